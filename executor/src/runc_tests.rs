//! Tearing down a run whose future was dropped.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::*;

/// A `Prepared` holding a container (its state still there, as after a run cut
/// short) whose "runtime" is a script that takes a while to delete it and notes
/// whether the run's directory still existed then.
fn prepared(dir: &Path, script: &Path, note: &Path) -> Prepared {
    std::fs::write(
        script,
        format!(
            "#!/bin/sh\nsleep 1\nif [ -d {dir} ]; then echo present; else echo gone; fi > {note}\n",
            dir = dir.display(),
            note = note.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir).unwrap();
    // The runtime's state of a container still there (a run cut short).
    std::fs::create_dir_all(dir.join("state/test")).unwrap();
    Prepared {
        dir: dir.to_owned(),
        bundle: dir.to_owned(),
        container: Some(Container {
            runtime: script.to_owned(),
            state_dir: dir.join("state"),
            id: "test".to_owned(),
        }),
        netns: None,
        overlay: None,
        copied: None,
        layer_mounts: Vec::new(),
        upper: dir.join("upper"),
        stubs: Stubs::default(),
        keep_dir: false,
    }
}

fn wait_for(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.is_empty()
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_drop_on_an_async_thread_hands_the_teardown_to_a_blocking_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, note) = (tmp.path().join("run"), tmp.path().join("note"));
    let run = prepared(&dir, &tmp.path().join("runtime"), &note);
    let started = Instant::now();
    drop(run);
    // The runtime's delete takes a second; the async thread did not wait for it.
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(dir.exists());
    let note = tokio::task::spawn_blocking(move || wait_for(&note))
        .await
        .unwrap();
    // The container went before the directory did.
    assert_eq!(note.trim(), "present");
    let deadline = Instant::now() + Duration::from_secs(5);
    while dir.exists() {
        assert!(Instant::now() < deadline, "run directory never removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_drop_outside_a_runtime_tears_down_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, note) = (tmp.path().join("run"), tmp.path().join("note"));
    drop(prepared(&dir, &tmp.path().join("runtime"), &note));
    assert_eq!(std::fs::read_to_string(&note).unwrap().trim(), "present");
    assert!(!dir.exists());
}

/// A container whose runtime already removed its state (a foreground run that
/// returned) costs no runtime process on teardown.
#[test]
fn a_finished_run_needs_no_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, note) = (tmp.path().join("run"), tmp.path().join("note"));
    let run = prepared(&dir, &tmp.path().join("runtime"), &note);
    std::fs::remove_dir(dir.join("state/test")).unwrap();
    let started = Instant::now();
    drop(run);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(!note.exists());
    assert!(!dir.exists());
}
