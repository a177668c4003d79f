//! `buildd build` against a real registry behind basic auth: credentials from the
//! Docker client config (`DOCKER_CONFIG`), a push with `-o type=image,push=true`, and a
//! FROM of what was pushed in another root, served from cache the second time.

use std::fs;
use std::path::Path;
use std::process::Command;

use buildd_testkit::require_tool;
use buildd_tests::registry::{TestRegistry, auth_registry_available};
use buildd_tests::{Run, Workspace, buildd_bin, busybox_context};

fn buildd(ws: &Workspace, root: &str, docker_config: &Path, args: &[&str]) -> Run {
    let out = Command::new(buildd_bin())
        .env("DOCKER_CONFIG", docker_config)
        .arg("--root")
        .arg(ws.path(root))
        .args(["build", "--progress=plain"])
        .args(args)
        .arg(ws.ctx())
        .output()
        .expect("run buildd");
    Run::of(out)
}

fn docker_config(dir: &Path, host: &str, user_colon_password: Option<&str>) {
    fs::create_dir_all(dir).unwrap();
    let auths = match user_colon_password {
        Some(creds) => {
            let out = Command::new("base64")
                .arg("-w0")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(creds.as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap();
            let auth = String::from_utf8(out.stdout).unwrap();
            format!(r#"{{"{host}": {{"auth": "{auth}"}}}}"#)
        }
        None => "{}".to_owned(),
    };
    fs::write(dir.join("config.json"), format!(r#"{{"auths": {auths}}}"#)).unwrap();
}

#[test]
fn push_and_pull_through_basic_auth_with_docker_config_credentials() {
    if !auth_registry_available() || !require_tool("skopeo") {
        return;
    }
    let reg = TestRegistry::start_with_basic_auth("ci", "pw");
    let host = reg.host();
    let ws = Workspace::new();
    if !busybox_context(&ws, &["sh", "echo", "cat", "test"]) {
        return;
    }
    let (good, none) = (ws.path("config-good"), ws.path("config-none"));
    docker_config(&good, &host, Some("ci:pw"));
    docker_config(&none, &host, None);

    let base = format!("{host}/base:1");
    ws.dockerfile("FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/sh\"]\n");
    let push = format!("type=image,name={base},push=true");
    let denied = buildd(&ws, "root-a", &none, &["-o", &push]).failure();
    assert!(
        denied.stderr.contains(&format!("pushing {host}/base"))
            && denied.stderr.contains("authentication required"),
        "{}",
        denied.stderr
    );
    buildd(&ws, "root-a", &good, &["-o", &push]).success();

    ws.dockerfile(&format!("FROM {base}\nRUN echo pulled > /pulled\n"));
    let out = ws.path("out.tar");
    let oci = format!("type=oci,dest={}", out.display());
    let denied = buildd(&ws, "root-b", &none, &["-o", &oci]).failure();
    assert!(
        denied.stderr.contains("authentication required"),
        "{}",
        denied.stderr
    );
    assert!(!out.exists());
    let first = buildd(&ws, "root-b", &good, &["-o", &oci]).success();
    assert_eq!(first.status_of("FROM"), Some("DONE"), "{}", first.stderr);
    let config = buildd_tests::skopeo_config(&out);
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // Pinned by the manifest digest the tag still names: all cached.
    let second = buildd(&ws, "root-b", &good, &["-o", &oci]).success();
    assert_eq!(
        second.status_of("FROM"),
        Some("CACHED"),
        "{}",
        second.stderr
    );
    assert_eq!(
        second.status_of("RUN echo"),
        Some("CACHED"),
        "{}",
        second.stderr
    );
}
