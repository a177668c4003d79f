//! `RUN --mount=type=bind` from a stage, as BuildKit mounts a snapshot: the
//! stage's layers as an overlay (no copy of its files), read-only unless `rw`,
//! whose writes stay inside the run; the source path is resolved inside the
//! stage, so a symlink there cannot reach the host.

use buildd_tests::{Workspace, busybox_context};

#[test]
fn stage_binds_are_overlays_whose_writes_stay_in_the_run() {
    let ws = Workspace::new();
    if !busybox_context(
        &ws,
        &["sh", "echo", "cat", "grep", "cut", "test", "ln", "mkdir"],
    ) {
        return;
    }
    ws.dockerfile(
        "FROM scratch AS src\n\
         COPY rootfs/ /\n\
         RUN mkdir -p /d /etc && echo original > /d/f && echo stage > /etc/marker && ln -s /etc /d/link\n\
         FROM src\n\
         RUN --mount=type=bind,from=src,source=/d,target=/m,rw \\\n\
             sh -c 'echo changed > /m/f && echo new > /m/n && cat /m/f > /rw-saw && grep \" /m \" /proc/mounts | cut -d\" \" -f3 > /rw-fstype'\n\
         RUN --mount=type=bind,from=src,source=/d,target=/m \\\n\
             sh -c 'cat /m/f > /ro-saw; (echo x > /m/x) 2>/dev/null && echo writable > /ro-write || echo read-only > /ro-write; test -e /m/n && echo kept > /ro-n || echo gone > /ro-n'\n\
         RUN --mount=type=bind,from=src,source=/d/link,target=/l \\\n\
             sh -c 'cat /l/marker > /link-saw'\n",
    );
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());
    ws.build(&["-o", &local]).success();
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    // The run saw its own write, through an overlay rather than a copy.
    assert_eq!(read("rw-saw"), "changed\n");
    assert_eq!(read("rw-fstype"), "overlay\n");
    // Nothing of it reached the stage, or the next run.
    assert_eq!(read("d/f"), "original\n");
    assert!(!out.join("d/n").exists());
    assert_eq!(read("ro-saw"), "original\n");
    assert_eq!(read("ro-write"), "read-only\n");
    assert_eq!(read("ro-n"), "gone\n");
    // An absolute symlink in the stage resolves inside the stage.
    assert_eq!(read("link-saw"), "stage\n");
}
