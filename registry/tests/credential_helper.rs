//! Docker credential helpers (`credHelpers`, `credsStore`) run as real processes
//! from a directory given to the config, never through the process-wide `$PATH`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use buildd_registry::{
    Client, Credential, CredentialError, CredentialSource, DockerConfig, RegistryConfig,
};
use buildd_tests::registry::{TestRegistry, auth_registry_available};
use common::{image, push_image, reference};

/// Writes `docker-credential-test`, which answers per server read from stdin and
/// logs every server it is asked about.
fn write_helper(dir: &Path, registry_host: &str) {
    let script = format!(
        r#"#!/bin/sh
[ "$1" = get ] || {{ echo "unexpected command $1" >&2; exit 2; }}
server=$(cat)
echo "$server" >> "{log}"
case "$server" in
  "{registry_host}") printf '{{"ServerURL":"%s","Username":"alice","Secret":"s3cret"}}' "$server" ;;
  "https://index.docker.io/v1/") printf '{{"ServerURL":"%s","Username":"hub","Secret":"hubpw"}}' "$server" ;;
  broken.example) echo "keychain is locked" >&2; exit 1 ;;
  garbage.example) echo "not json" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#,
        log = dir.join("calls.log").display()
    );
    let path = dir.join("docker-credential-test");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn cred(u: &str, p: &str) -> Option<Credential> {
    Some(Credential {
        username: u.into(),
        secret: p.into(),
    })
}

fn config(dir: &Path, json: &str) -> DockerConfig {
    std::fs::write(dir.join("config.json"), json).unwrap();
    DockerConfig::from_dir(dir)
        .unwrap()
        .with_helper_dirs(vec![dir.to_owned()])
}

#[test]
fn cred_helpers_and_creds_store_run_the_helper() {
    let dir = tempfile::tempdir().unwrap();
    write_helper(dir.path(), "reg.example:5000");

    let c = config(
        dir.path(),
        r#"{"credHelpers": {"reg.example:5000": "test", "docker.io": "test"},
            "auths": {"fallback.example": {"auth": "Zjpwdw=="}}}"#,
    );
    assert_eq!(
        c.credential("reg.example:5000").unwrap(),
        cred("alice", "s3cret")
    );
    assert_eq!(c.credential("docker.io").unwrap(), cred("hub", "hubpw"));
    assert_eq!(
        c.credential("registry-1.docker.io").unwrap(),
        cred("hub", "hubpw")
    );
    // No helper for this host: auths answer; none at all: anonymous.
    assert_eq!(c.credential("fallback.example").unwrap(), cred("f", "pw"));
    assert_eq!(c.credential("unknown.example").unwrap(), None);

    // credsStore covers every host; "not found" falls back to auths.
    let c = config(
        dir.path(),
        r#"{"credsStore": "test", "auths": {"fallback.example": {"auth": "Zjpwdw=="}}}"#,
    );
    assert_eq!(
        c.credential("reg.example:5000").unwrap(),
        cred("alice", "s3cret")
    );
    assert_eq!(c.credential("fallback.example").unwrap(), cred("f", "pw"));
    assert_eq!(c.credential("nowhere.example").unwrap(), None);

    let err = c.credential("broken.example").unwrap_err();
    assert!(matches!(err, CredentialError::HelperFailed { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "credential helper {} failed for broken.example: keychain is locked",
            dir.path().join("docker-credential-test").display()
        )
    );
    let err = c.credential("garbage.example").unwrap_err();
    assert!(matches!(err, CredentialError::HelperOutput { .. }), "{err}");

    let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "reg.example:5000",
            "https://index.docker.io/v1/",
            "https://index.docker.io/v1/",
            "reg.example:5000",
            "fallback.example",
            "nowhere.example",
            "broken.example",
            "garbage.example",
        ]
    );
}

#[tokio::test]
async fn a_helper_supplies_basic_auth_for_a_real_registry() {
    if !auth_registry_available() {
        return;
    }
    let reg = TestRegistry::start_with_basic_auth("alice", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    write_helper(dir.path(), &reg.host());
    let creds = config(
        dir.path(),
        &format!(r#"{{"credHelpers": {{"{}": "test"}}}}"#, reg.host()),
    );
    let c = Client::new(RegistryConfig::default(), Arc::new(creds)).unwrap();
    let host = buildd_oci::host_platform();
    let img = image(&host, &[&[("x", b"helper")]]);
    let r = reference(&format!("{}/via-helper:v1", reg.host()));
    push_image(&c, &r, &img).await;
    assert_eq!(c.resolve(&r, &host).await.unwrap().digest, img.digest);
    // The client asks the helper once per host, not once per request.
    let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
    assert_eq!(calls.lines().count(), 1, "{calls}");
}
