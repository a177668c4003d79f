//! Against scripted registries: tampered content, the bearer token flow, mirror
//! fallback, and retries of transient failures.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use buildd_registry::{
    BlobSource, Client, Credential, CredentialSource, ErrorKind, NoCredentials, RegistryConfig,
    RetryPolicy, StaticCredentials,
};
use common::fake::{FakeServer, Request, Response};
use common::{TestImage, image, push_image, reference};

fn client(config: RegistryConfig, creds: impl CredentialSource + 'static) -> Client {
    Client::new(config, Arc::new(creds)).unwrap()
}

/// What a registry serving `img` as `repo:v1` answers, with blob bodies
/// replaced by `blob_override` where it has an entry.
fn serve(
    req: &Request,
    repo: &str,
    img: &TestImage,
    blob_override: &BTreeMap<String, Response>,
) -> Response {
    let manifests = format!("/v2/{repo}/manifests/");
    let blobs = format!("/v2/{repo}/blobs/");
    let path = req.path();
    if let Some(r) = path.strip_prefix(&manifests)
        && (r == "v1" || r == img.digest.to_string())
    {
        return Response::new(200)
            .header("Content-Type", &img.manifest.media_type)
            .header("Docker-Content-Digest", &img.digest.to_string())
            .body(img.manifest_bytes.clone());
    }
    if let Some(d) = path.strip_prefix(&blobs) {
        if let Some(resp) = blob_override.get(d) {
            return resp.clone();
        }
        if let Some((_, bytes)) = img.blobs.iter().find(|(desc, _)| desc.digest == d) {
            return Response::new(200).body(bytes.clone());
        }
    }
    Response::new(404).body(r#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#)
}

fn test_image() -> TestImage {
    image(
        &buildd_oci::host_platform(),
        &[&[("a", b"alpha content")], &[("b", b"beta content")]],
    )
}

#[tokio::test]
async fn tampered_or_mis_sized_blobs_are_rejected() {
    let img = Arc::new(test_image());
    let (config, config_bytes) = img.blobs[0].clone();
    let (layer, layer_bytes) = img.blobs[1].clone();
    let (layer2, layer2_bytes) = img.blobs[2].clone();
    let mut tampered = layer_bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    let mut longer = config_bytes.clone();
    longer.push(b' ');
    let overrides = BTreeMap::from([
        (
            layer.digest.clone(),
            Response::new(200).body(tampered.clone()),
        ),
        (config.digest.clone(), Response::new(200).body(longer)),
        (
            layer2.digest.clone(),
            Response::new(200)
                .body(layer2_bytes[..layer2_bytes.len() - 3].to_vec())
                .close_delimited(),
        ),
    ]);
    let served = Arc::clone(&img);
    let server = FakeServer::start(move |req| serve(req, "img", &served, &overrides)).await;
    let c = client(RegistryConfig::default(), NoCredentials);
    let r = reference(&format!("{}/img:v1", server.host()));

    // The manifest itself is fine.
    let resolved = c.resolve(&r, &buildd_oci::host_platform()).await.unwrap();
    assert_eq!(resolved.digest, img.digest);

    let mut sink = Vec::new();
    let err = c.fetch_blob(&r, &layer, &mut sink).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/img: layer {}: digest mismatch (got {})",
            server.host(),
            layer.digest,
            buildd_proto::Digest::of(&tampered)
        )
    );

    let err = c.fetch_blob_bytes(&r, &config).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/img: config {}: size mismatch (expected {} bytes, got {})",
            server.host(),
            config.digest,
            config.size,
            config.size + 1
        )
    );

    // Without a Content-Length the shortfall shows only at the end of the body.
    let err = c.fetch_blob_bytes(&r, &layer2).await.unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::SizeMismatch { actual, .. } if actual == layer2.size - 3),
        "{err}"
    );

    // A descriptor naming content the registry does not have.
    let mut missing = layer.clone();
    missing.digest = buildd_proto::Digest::of(b"nothing").to_string();
    let err = c.fetch_blob_bytes(&r, &missing).await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn manifests_must_match_the_digest_they_are_fetched_or_served_by() {
    let img = Arc::new(test_image());
    let other = test_image_other();
    let served = Arc::clone(&img);
    let server = FakeServer::start(move |req| {
        let mut resp = serve(req, "img", &served, &BTreeMap::new());
        if req.path().contains("/manifests/") {
            // Right headers, wrong bytes.
            resp.body = other.manifest_bytes.clone();
        }
        resp
    })
    .await;
    let c = client(RegistryConfig::default(), NoCredentials);
    let by_tag = reference(&format!("{}/img:v1", server.host()));
    let err = c.fetch_manifest(&by_tag).await.unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::DigestMismatch { .. }),
        "{err}"
    );
    let err = c
        .fetch_manifest(&by_tag.at_digest(img.digest))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/img: manifest {}: digest mismatch (got {})",
            server.host(),
            img.digest,
            buildd_proto::Digest::of(&test_image_other().manifest_bytes)
        )
    );
}

fn test_image_other() -> TestImage {
    image(&buildd_oci::host_platform(), &[&[("other", b"other")]])
}

/// A token server granting `good` for bob's credentials, `anon` without any, and
/// refusing wrong ones.
async fn token_server() -> FakeServer {
    let bob = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bob:pw")
    );
    FakeServer::start(move |req| match req.header("authorization") {
        Some(a) if a == bob => Response::new(200).body(r#"{"token":"good","expires_in":300}"#),
        None => Response::new(200).body(r#"{"access_token":"anon"}"#),
        Some(_) => Response::new(401).body(r#"{"details":"incorrect username or password"}"#),
    })
    .await
}

/// A registry that serves `private/img` for token `good` and `public/img` for any
/// token, challenging everything else.
async fn bearer_registry(realm: String, img: Arc<TestImage>) -> FakeServer {
    FakeServer::start(move |req| {
        let repo = if req.path().starts_with("/v2/public/") {
            "public/img"
        } else if req.path().starts_with("/v2/readonly/") {
            "readonly/img"
        } else {
            "private/img"
        };
        let ok = match req.header("authorization") {
            Some("Bearer good") => repo != "readonly/img",
            Some("Bearer anon") => repo == "public/img",
            _ => false,
        };
        if ok {
            return serve(req, repo, &img, &BTreeMap::new());
        }
        // A token that is valid but not good for this repository.
        let error = if req.header("authorization").is_some() {
            r#",error="insufficient_scope""#
        } else {
            ""
        };
        Response::new(401).header(
            "WWW-Authenticate",
            &format!(
                r#"Bearer realm="{realm}",service="fake-registry",scope="repository:{repo}:pull"{error}"#
            ),
        )
    })
    .await
}

#[tokio::test]
async fn bearer_tokens_are_fetched_with_credentials_and_cached() {
    let img = Arc::new(test_image());
    let tokens = token_server().await;
    let realm = format!("http://{}/token", tokens.host());
    let reg = bearer_registry(realm, Arc::clone(&img)).await;
    let creds = StaticCredentials(BTreeMap::from([(
        reg.host(),
        Credential {
            username: "bob".into(),
            secret: "pw".into(),
        },
    )]));
    let c = client(RegistryConfig::default(), creds);
    let r = reference(&format!("{}/private/img:v1", reg.host()));
    let resolved = c.resolve(&r, &buildd_oci::host_platform()).await.unwrap();
    assert_eq!(resolved.digest, img.digest);
    for (desc, bytes) in &img.blobs {
        assert_eq!(&c.fetch_blob_bytes(&r, desc).await.unwrap(), bytes);
    }

    // One token for the repository's pull scope served every request after the first.
    let token_reqs = tokens.requests();
    assert_eq!(token_reqs.len(), 1, "{token_reqs:?}");
    assert_eq!(token_reqs[0].query("service"), ["fake-registry"]);
    assert_eq!(
        token_reqs[0].query("scope"),
        ["repository:private/img:pull"]
    );
    let unauthorized = reg
        .requests()
        .iter()
        .filter(|r| r.header("authorization").is_none())
        .count();
    assert_eq!(unauthorized, 1);

    let readonly = reference(&format!("{}/readonly/img:v1", reg.host()));
    let err = c.fetch_manifest(&readonly).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {0}/readonly/img: access denied by {0}: the token does not grant \
             repository:readonly/img:pull",
            reg.host()
        )
    );

    // Anonymous tokens are enough for the public repository only.
    let c = client(RegistryConfig::default(), NoCredentials);
    let public = reference(&format!("{}/public/img:v1", reg.host()));
    c.fetch_manifest(&public).await.unwrap();
    let err = c.fetch_manifest(&r).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {0}/private/img: authentication required: {0} asks for credentials and \
             none are configured",
            reg.host()
        )
    );

    let wrong = StaticCredentials(BTreeMap::from([(
        reg.host(),
        Credential {
            username: "bob".into(),
            secret: "nope".into(),
        },
    )]));
    let err = client(RegistryConfig::default(), wrong)
        .fetch_manifest(&r)
        .await
        .unwrap_err();
    assert!(
        matches!(&err.kind, ErrorKind::Unauthorized { username, .. } if username == "bob"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unusable_challenge_is_reported() {
    let server = FakeServer::start(|_| {
        Response::new(401).header("WWW-Authenticate", r#"Negotiate realm="corp""#)
    })
    .await;
    let c = client(RegistryConfig::default(), NoCredentials);
    let err = c
        .fetch_manifest(&reference(&format!("{}/x:v1", server.host())))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {0}/x: {0}: unsupported authentication challenge \"Negotiate realm=\\\"corp\\\"\"",
            server.host()
        )
    );
}

fn closed_port_host() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn mirrors_are_tried_first_and_fall_back_to_the_origin() {
    let img = Arc::new(test_image());
    let served = Arc::clone(&img);
    let origin =
        FakeServer::start(move |req| serve(req, "library/app", &served, &BTreeMap::new())).await;
    let broken = FakeServer::start(|_| Response::new(500).body("boom")).await;
    let dead = closed_port_host();
    let mut config = RegistryConfig::default();
    config
        .mirrors
        .insert(origin.host(), vec![dead, broken.host()]);
    let c = client(config, NoCredentials);
    let r = reference(&format!("{}/library/app:v1", origin.host()));
    let resolved = c.resolve(&r, &buildd_oci::host_platform()).await.unwrap();
    assert_eq!(resolved.digest, img.digest);
    let (layer, bytes) = &img.blobs[1];
    assert_eq!(&c.fetch_blob_bytes(&r, layer).await.unwrap(), bytes);
    assert_eq!(broken.requests().len(), 2);
    assert_eq!(origin.requests().len(), 2);

    // A mirror that has the image serves it; the origin is not asked.
    let served = Arc::clone(&img);
    let mirror =
        FakeServer::start(move |req| serve(req, "library/app", &served, &BTreeMap::new())).await;
    let dead_origin = closed_port_host();
    let mut config = quick_retries(2);
    config.mirrors.insert(
        dead_origin.clone(),
        vec![format!("http://{}", mirror.host())],
    );
    let c = client(config, NoCredentials);
    let r = reference(&format!("{dead_origin}/library/app:v1"));
    let resolved = c.resolve(&r, &buildd_oci::host_platform()).await.unwrap();
    assert_eq!(resolved.digest, img.digest);
    assert_eq!(&c.fetch_blob_bytes(&r, layer).await.unwrap(), bytes);
    assert_eq!(mirror.requests().len(), 2);

    // When everything fails the origin's error is the one reported.
    let err = c
        .fetch_manifest(&reference(&format!("{dead_origin}/library/gone:v1")))
        .await;
    let err = err.unwrap_err();
    assert!(matches!(err.kind.last(), ErrorKind::Http { .. }), "{err}");
    assert!(err.to_string().contains(&dead_origin), "{err}");
    // The mirror is asked once, the origin (refusing connections) twice.
    assert!(err.to_string().ends_with("(after 2 attempts)"), "{err}");
}

/// `len` bytes of JSON whitespace around an empty object: valid, and as large as
/// asked.
fn padded_json(len: usize) -> Vec<u8> {
    let mut body = vec![b' '; len];
    body[0] = b'{';
    body[len - 1] = b'}';
    body
}

#[tokio::test]
async fn manifests_over_the_cap_are_refused_announced_or_not() {
    use buildd_registry::limits::MAX_MANIFEST_BYTES;
    let big = padded_json(MAX_MANIFEST_BYTES as usize + 1);
    let server = FakeServer::start(move |req| match req.path() {
        "/v2/announced/manifests/v1" => Response::new(200).body(big.clone()),
        "/v2/streamed/manifests/v1" => Response::new(200).body(big.clone()).close_delimited(),
        // Announces a gigabyte and sends two bytes: refused on the header alone.
        "/v2/lying/manifests/v1" => Response::new(200)
            .header("Content-Length", "1000000000")
            .body("{}")
            .close_delimited(),
        _ => Response::new(404),
    })
    .await;
    let c = client(RegistryConfig::default(), NoCredentials);
    let host = server.host();

    let err = c
        .fetch_manifest(&reference(&format!("{host}/announced:v1")))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {host}/announced: manifest v1: {} bytes, over the manifest cap of \
             {MAX_MANIFEST_BYTES} bytes",
            MAX_MANIFEST_BYTES + 1
        )
    );

    let err = c
        .fetch_manifest(&reference(&format!("{host}/streamed:v1")))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::TooLarge { size, at_least: true, limit, .. }
            if size > limit && limit == MAX_MANIFEST_BYTES),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!(
            ": at least {}",
            match err.kind {
                ErrorKind::TooLarge { size, .. } => size,
                _ => unreachable!(),
            }
        )),
        "{err}"
    );

    let err = c
        .fetch_manifest(&reference(&format!("{host}/lying:v1")))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {host}/lying: manifest v1: 1000000000 bytes, over the manifest cap of \
             {MAX_MANIFEST_BYTES} bytes"
        )
    );
}

#[tokio::test]
async fn configs_over_the_cap_are_refused_unread() {
    use buildd_registry::limits::MAX_CONFIG_BYTES;
    let img = test_image();
    let big = padded_json(MAX_CONFIG_BYTES as usize + 1);
    let mut manifest = img.manifest.clone();
    manifest.config = buildd_oci::Descriptor::new(
        &manifest.config.media_type,
        buildd_proto::Digest::of(&big),
        big.len() as u64,
    );
    let manifest_bytes = buildd_oci::json_blob(&manifest);
    let (config, config_bytes) = (manifest.config.clone(), big);
    let served_manifest = manifest_bytes.clone();
    let server = FakeServer::start(move |req| {
        if req.path() == "/v2/img/manifests/v1" {
            Response::new(200)
                .header("Content-Type", buildd_oci::MEDIA_TYPE_MANIFEST)
                .body(served_manifest.clone())
        } else if req.path() == format!("/v2/img/blobs/{}", config.digest) {
            Response::new(200).body(config_bytes.clone())
        } else {
            Response::new(404)
        }
    })
    .await;
    let c = client(RegistryConfig::default(), NoCredentials);
    let r = reference(&format!("{}/img:v1", server.host()));
    let resolved = c.resolve(&r, &buildd_oci::host_platform()).await.unwrap();
    let err = c
        .fetch_blob_bytes(&r, &resolved.manifest.config)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/img: config {}: {} bytes, over the image config cap of \
             {MAX_CONFIG_BYTES} bytes",
            server.host(),
            resolved.manifest.config.digest,
            MAX_CONFIG_BYTES + 1
        )
    );
    // Refused on the descriptor: the blob was never asked for.
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    assert_eq!(paths, ["/v2/img/manifests/v1"]);
}

#[tokio::test]
async fn token_responses_over_the_cap_are_refused() {
    use buildd_registry::limits::MAX_TOKEN_BYTES;
    let huge_token = format!(r#"{{"token":"{}"}}"#, "t".repeat(MAX_TOKEN_BYTES as usize));
    let tokens = FakeServer::start(move |_| Response::new(200).body(huge_token.clone())).await;
    let realm = format!("http://{}/token", tokens.host());
    let reg = bearer_registry(realm.clone(), Arc::new(test_image())).await;
    let c = client(RegistryConfig::default(), NoCredentials);
    let err = c
        .fetch_manifest(&reference(&format!("{}/public/img:v1", reg.host())))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/public/img: token server {realm}: {} bytes, over the token response \
             cap of {MAX_TOKEN_BYTES} bytes",
            reg.host(),
            MAX_TOKEN_BYTES + 12
        )
    );
    assert_eq!(tokens.requests().len(), 1);
}

/// A client config that retries `attempts` times in all, without waiting long.
fn quick_retries(attempts: u32) -> RegistryConfig {
    RegistryConfig {
        retry: RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
        },
        ..Default::default()
    }
}

/// A request a [`PushRegistry`] answers with a fault: method and a part of the path.
type Fault = (&'static str, &'static str, Response);

/// A registry keeping pushed blobs and manifests in memory, answering a request
/// with the first unused fault that matches it instead.
#[derive(Default)]
struct PushRegistry {
    blobs: BTreeMap<String, Vec<u8>>,
    manifests: BTreeMap<String, (String, Vec<u8>)>,
    uploads: usize,
    faults: Vec<Fault>,
}

impl PushRegistry {
    async fn start(faults: Vec<Fault>) -> (FakeServer, Arc<Mutex<PushRegistry>>) {
        let state = Arc::new(Mutex::new(PushRegistry {
            faults,
            ..Default::default()
        }));
        let shared = Arc::clone(&state);
        let server = FakeServer::start(move |req| shared.lock().unwrap().answer(req)).await;
        (server, state)
    }

    fn answer(&mut self, req: &Request) -> Response {
        let path = req.path().to_owned();
        if let Some(i) = self
            .faults
            .iter()
            .position(|(m, p, _)| *m == req.method && path.contains(p))
        {
            return self.faults.remove(i).2;
        }
        let not_found = Response::new(404);
        let Some(rest) = path.strip_prefix("/v2/") else {
            // An upload session: PUT /upload/N?digest=D.
            let digest = req.query("digest").pop().unwrap_or_default();
            if req.method != "PUT" || digest != buildd_proto::Digest::of(&req.body).to_string() {
                return Response::new(400).body(r#"{"errors":[{"code":"DIGEST_INVALID"}]}"#);
            }
            self.blobs.insert(digest, req.body.clone());
            return Response::new(201);
        };
        if rest.ends_with("/blobs/uploads/") && req.method == "POST" {
            self.uploads += 1;
            return Response::new(202).header("Location", &format!("/upload/{}", self.uploads));
        }
        if let Some((_, digest)) = rest.split_once("/blobs/") {
            return match (self.blobs.get(digest), req.method.as_str()) {
                (Some(_), "HEAD") => Response::new(200),
                (Some(b), "GET") => Response::new(200).body(b.clone()),
                _ => not_found,
            };
        }
        if let Some((_, tag)) = rest.split_once("/manifests/") {
            if req.method == "PUT" {
                let media_type = req.header("content-type").unwrap_or_default().to_owned();
                let digest = buildd_proto::Digest::of(&req.body).to_string();
                self.manifests
                    .insert(tag.to_owned(), (media_type, req.body.clone()));
                return Response::new(201).header("Docker-Content-Digest", &digest);
            }
            if let Some((media_type, bytes)) = self.manifests.get(tag) {
                return Response::new(200)
                    .header("Content-Type", media_type)
                    .body(bytes.clone());
            }
        }
        not_found
    }
}

fn count(server: &FakeServer, method: &str, path: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path().contains(path))
        .count()
}

#[tokio::test]
async fn transient_failures_are_retried_until_push_and_pull_succeed() {
    let img = test_image();
    let (server, state) = PushRegistry::start(vec![
        (
            "HEAD",
            "/blobs/",
            Response::new(503).header("Retry-After", "0"),
        ),
        ("POST", "/blobs/uploads/", Response::new(503)),
        // Gone mid-upload: the next try starts a new session.
        ("PUT", "/upload/", Response::dropped()),
        ("PUT", "/manifests/", Response::new(502)),
        (
            "PUT",
            "/manifests/",
            Response::new(429).header("Retry-After", "0"),
        ),
        ("GET", "/manifests/", Response::new(504)),
        ("GET", "/blobs/", Response::dropped()),
    ])
    .await;
    let c = client(quick_retries(5), NoCredentials);
    let r = reference(&format!("{}/team/app:v1", server.host()));
    push_image(&c, &r, &img).await;
    assert_eq!(state.lock().unwrap().faults.len(), 2, "push faults unused");

    // The first blob took four tries, one session each after its HEAD succeeded.
    assert_eq!(count(&server, "HEAD", "/blobs/"), img.blobs.len() + 3);
    assert_eq!(
        count(&server, "POST", "/blobs/uploads/"),
        img.blobs.len() + 2
    );
    assert_eq!(count(&server, "PUT", "/upload/"), img.blobs.len() + 1);
    assert_eq!(count(&server, "PUT", "/manifests/"), 3);
    for (desc, bytes) in &img.blobs {
        assert_eq!(state.lock().unwrap().blobs.get(&desc.digest), Some(bytes));
    }

    let resolved = c.resolve(&r, &buildd_oci::host_platform()).await.unwrap();
    assert_eq!(resolved.digest, img.digest);
    for (desc, bytes) in &img.blobs {
        assert_eq!(&c.fetch_blob_bytes(&r, desc).await.unwrap(), bytes);
    }
    assert!(state.lock().unwrap().faults.is_empty());
    assert_eq!(count(&server, "GET", "/manifests/"), 2);
}

#[tokio::test]
async fn permanent_failures_are_not_retried_and_exhausted_retries_say_so() {
    let img = test_image();
    let (desc, bytes) = img.blobs[1].clone();
    let source = BlobSource::Bytes(bytes.clone());
    let bad_request =
        Response::new(400).body(r#"{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"no"}]}"#);
    let (server, _) = PushRegistry::start(vec![("POST", "/blobs/uploads/", bad_request)]).await;
    let c = client(quick_retries(3), NoCredentials);
    let r = reference(&format!("{}/team/app:v1", server.host()));
    let err = c.push_blob(&r, &desc, &source, None).await.unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::Status { status: 400, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("attempts"), "{err}");
    assert_eq!(count(&server, "POST", "/blobs/uploads/"), 1);

    // A registry that stays unavailable: every try is made, and the error says so.
    let unavailable = || ("POST", "/blobs/uploads/", Response::new(503));
    let (server, _) = PushRegistry::start(vec![unavailable(), unavailable(), unavailable()]).await;
    let r = reference(&format!("{}/team/app:v1", server.host()));
    let err = c.push_blob(&r, &desc, &source, None).await.unwrap_err();
    assert!(
        matches!(
            &err.kind,
            ErrorKind::Attempts { attempts: 3, last } if matches!(**last, ErrorKind::Status { status: 503, .. })
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "pushing {0}/team/app: layer {1}: http://{0}/v2/team/app/blobs/uploads/ answered 503 \
             (after 3 attempts)",
            server.host(),
            desc.digest
        )
    );
    assert_eq!(count(&server, "POST", "/blobs/uploads/"), 3);

    // Content that does not match its digest is not fetched again.
    let mut tampered = bytes.clone();
    tampered[0] ^= 0xff;
    let (server, _) =
        PushRegistry::start(vec![("GET", "/blobs/", Response::new(200).body(tampered))]).await;
    let r = reference(&format!("{}/team/app:v1", server.host()));
    let err = c.fetch_blob_bytes(&r, &desc).await.unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::DigestMismatch { .. }),
        "{err}"
    );
    assert_eq!(count(&server, "GET", "/blobs/"), 1);
}

#[tokio::test]
async fn a_blob_partly_written_is_not_fetched_again() {
    let img = test_image();
    let (desc, bytes) = img.blobs[1].clone();
    // The whole length announced, half sent: a transport error after bytes arrived.
    let short = Response::new(200)
        .header("Content-Length", &bytes.len().to_string())
        .body(bytes[..bytes.len() / 2].to_vec())
        .close_delimited();
    let (server, state) = PushRegistry::start(vec![("GET", "/blobs/", short)]).await;
    state
        .lock()
        .unwrap()
        .blobs
        .insert(desc.digest.clone(), bytes);
    let c = client(quick_retries(3), NoCredentials);
    let r = reference(&format!("{}/team/app:v1", server.host()));
    let mut sink = Vec::new();
    let err = c.fetch_blob(&r, &desc, &mut sink).await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Http { .. }), "{err}");
    assert_eq!(count(&server, "GET", "/blobs/"), 1);
}
