//! RUN with secrets, SSH agents, private cache mounts and the seccomp profile,
//! through the whole engine on the busybox fixture. No test writes a secret's
//! value into a Dockerfile or a layer: commands compare its sha256.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use buildd_engine::build::BuildRequest;
use buildd_engine::session::{LocalSecrets, LocalSsh, SecretStore, SshStore};
use buildd_engine::solver::ProgressEvent;
use common::{Fixture, fixture, run_steps};
use sha2::{Digest, Sha256};

const VALUE: &str = "s3cr3t-VALUE-8d1f0c";

fn sha(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Secrets `ids`, all with `value`, from files outside the context and the root.
fn secrets(f: &Fixture, ids: &[&str], value: &str) -> Arc<dyn SecretStore> {
    let dir = f.dir.path().join("secret-files");
    fs::create_dir_all(&dir).unwrap();
    let mut s = LocalSecrets::default();
    for id in ids {
        let path = dir.join(id);
        fs::write(&path, value).unwrap();
        s.add_spec(&format!("id={id},src={}", path.display()))
            .unwrap();
    }
    Arc::new(s)
}

fn with_secrets(store: Arc<dyn SecretStore>) -> BuildRequest {
    BuildRequest {
        secrets: Some(store),
        ..Default::default()
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let (path, kind) = (e.path(), e.file_type().unwrap());
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && fs::read(&path)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn progress_text(events: &[ProgressEvent]) -> String {
    events
        .iter()
        .map(|ev| match ev {
            ProgressEvent::Log { data, .. } => String::from_utf8_lossy(data).into_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_readable_in_run_and_reach_no_layer_cache_key_or_output() {
    let Some(f) = fixture() else { return };
    let hash = sha(VALUE);
    let dockerfile = format!(
        "RUN --mount=type=secret,id=mysecret test \"$(sha256sum < /run/secrets/mysecret)\" = \"{hash}  -\" && touch /ok\n\
         RUN --mount=type=secret,id=mysecret,target=/etc/tok,mode=0440,uid=1000,gid=1000 \
             test \"$(stat -c %a:%u:%g /etc/tok)\" = 440:1000:1000 && ! (echo x > /etc/tok) 2>/dev/null\n\
         RUN --mount=type=secret,id=tok,env=TOKEN test \"$(printf %s \"$TOKEN\" | sha256sum)\" = \"{hash}  -\"\n"
    );
    let store = secrets(&f, &["mysecret", "tok"], VALUE);
    let (result, events) = f.build_with(&dockerfile, with_secrets(store)).await;
    let outcome = result.unwrap();
    assert_eq!(run_steps(&events, false).len(), 3, "{events:#?}");
    assert!(f.out().join("ok").is_file());
    // No mount point stub is left: not the file, not the directories made for it.
    assert!(!f.out().join("run").exists());
    assert!(!f.out().join("etc/tok").exists());

    let root = f.dir.path().join("root");
    let leaks = files_containing(&root, VALUE.as_bytes());
    assert!(leaks.is_empty(), "the secret reached {leaks:?}");
    assert!(
        !files_containing(&f.out(), VALUE.as_bytes())
            .iter()
            .any(|_| true)
    );
    assert!(!progress_text(&events).contains(VALUE));
    assert!(!format!("{:?}", outcome.image).contains(VALUE));
    // The tmpfs of the runs are gone.
    let left = fs::read_dir(root.join("secrets")).unwrap().count();
    assert_eq!(left, 0);

    // A new value does not bust the cache, as in BuildKit.
    let store = secrets(&f, &["mysecret", "tok"], "another-value");
    let (result, events) = f.build_with(&dockerfile, with_secrets(store)).await;
    result.unwrap();
    assert!(run_steps(&events, false).is_empty(), "{events:#?}");
    assert_eq!(run_steps(&events, true).len(), 3, "{events:#?}");

    // The search above does find a value that a RUN writes into its layer.
    let leak = "RUN --mount=type=secret,id=tok cat /run/secrets/tok > /leak\n";
    let store = secrets(&f, &["tok"], "leaked-value");
    let (result, _) = f.build_with(leak, with_secrets(store)).await;
    result.unwrap();
    assert!(!files_containing(&root.join("layers"), b"leaked-value").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_secrets_are_skipped_when_optional_and_named_when_required() {
    let Some(f) = fixture() else { return };
    let store = secrets(&f, &["present"], VALUE);
    let optional = "RUN --mount=type=secret,id=nope test ! -e /run/secrets/nope\n\
                    RUN --mount=type=secret,id=nope,env=NOPE test -z \"$NOPE\"\n";
    let (result, _) = f.build_with(optional, with_secrets(store.clone())).await;
    result.unwrap();

    for dockerfile in [
        "RUN --mount=type=secret,id=nope,required true\n",
        "RUN --mount=type=secret,id=nope,env=NOPE,required=true true\n",
    ] {
        let (result, _) = f.build_with(dockerfile, with_secrets(store.clone())).await;
        let err = result.unwrap_err().to_string();
        assert!(err.contains("secret \"nope\" not found"), "{err}");
    }
    // With no secrets given at all, a required one fails the same way.
    let (result, _) = f
        .build("RUN --mount=type=secret,id=nope,required true\n")
        .await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("secret \"nope\" not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_mounts_give_a_socket_and_ssh_auth_sock() {
    let Some(f) = fixture() else { return };
    let agent = f.dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent).unwrap();
    let mut ssh = LocalSsh::default();
    ssh.add_spec(&format!("default={}", agent.display()))
        .unwrap();
    ssh.add_spec(&format!("other={}", agent.display())).unwrap();
    let ssh: Arc<dyn SshStore> = Arc::new(ssh);
    let req = || BuildRequest {
        ssh: Some(ssh.clone()),
        ..Default::default()
    };
    let dockerfile = "RUN --mount=type=ssh test \"$SSH_AUTH_SOCK\" = /run/buildkit/ssh_agent.0 \
                          && test -S \"$SSH_AUTH_SOCK\" && test \"$(stat -c %a:%u $SSH_AUTH_SOCK)\" = 600:0\n\
                      USER app\n\
                      RUN --mount=type=ssh,id=other,target=/tmp/agent,uid=1000,mode=0660 \
                          test -S /tmp/agent && test \"$(stat -c %a:%u /tmp/agent)\" = 660:1000\n\
                      RUN --mount=type=ssh,id=absent test ! -e /run/buildkit/ssh_agent.0\n";
    let (result, events) = f.build_with(dockerfile, req()).await;
    result.unwrap();
    assert_eq!(run_steps(&events, false).len(), 3, "{events:#?}");
    assert!(!f.out().join("run").exists());
    assert!(!f.out().join("tmp/agent").exists());

    let (result, _) = f
        .build_with("RUN --mount=type=ssh,id=absent,required true\n", req())
        .await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("no ssh agent \"absent\""), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn private_cache_mounts_get_their_own_instance_while_another_run_holds_one() {
    let Some(f) = fixture() else { return };
    // Two independent stages run at once; each writes its name and, after the
    // other has had time to write too, lists what it sees.
    let run = |stage: &str, sharing: &str| {
        format!(
            "FROM base AS {stage}\n\
             RUN --mount=type=cache,id=c,target=/c,sharing={sharing} \
                 touch /c/{stage} && sleep 2 && ls /c > /seen\n"
        )
    };
    let dockerfile = |sharing: &str| {
        format!(
            "FROM scratch AS base\nCOPY rootfs/ /\n{}{}\
             FROM base\nCOPY --from=a /seen /a\nCOPY --from=b /seen /b\n",
            run("a", sharing),
            run("b", sharing)
        )
    };
    let (result, _) = f
        .build_exact(&dockerfile("private"), BuildRequest::default())
        .await;
    result.unwrap();
    assert_eq!(f.read("a"), "a\n");
    assert_eq!(f.read("b"), "b\n");
    let instances = fs::read_dir(f.dir.path().join("root/cache-mounts"))
        .unwrap()
        .count();
    assert_eq!(instances, 2);

    // Shared runs of another id see each other's files in one instance.
    let shared = dockerfile("shared").replace("id=c", "id=s");
    let (result, _) = f.build_exact(&shared, BuildRequest::default()).await;
    result.unwrap();
    assert_eq!(f.read("a"), "a\nb\n");
    assert_eq!(f.read("b"), "a\nb\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_seccomp_profile_blocks_namespaces_unless_insecure_is_allowed() {
    let Some(f) = fixture() else { return };
    let sandboxed = "RUN grep -Eq '^Seccomp:[[:space:]]+2$' /proc/self/status\n\
                     RUN if unshare -U true 2>/tmp/err; then exit 1; fi; grep -q 'Operation not permitted' /tmp/err\n\
                     RUN linux32 true && echo still-works > /works\n";
    let (result, _) = f.build(sandboxed).await;
    result.unwrap();
    assert_eq!(f.read("works"), "still-works\n");

    let insecure = "RUN --security=insecure grep -Eq '^Seccomp:[[:space:]]+0$' /proc/self/status \
                        && unshare -U true && mkdir -p /m && mount -t tmpfs none /m\n";
    let (result, _) = f.build(insecure).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("--allow security.insecure"), "{err}");
    let req = BuildRequest {
        allow: vec!["security.insecure".to_owned()],
        ..Default::default()
    };
    let (result, _) = f.build_with(insecure, req).await;
    result.unwrap();
}
