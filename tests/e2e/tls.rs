//! A Cachito deployment's clients over real TLS: OSBS authenticates with a client certificate
//! only and always sends `"user"`; httpd-style proxies name the user in a header; what holds a
//! request's repository token is for its people only.

use crate::support::tls::TestPki;
use crate::support::{GitRepo, Larder};
use base64::Engine;
use rcgen::DnType;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const OSBS_DN: &str = "CN=osbs,O=Example";
const WORKER_DN: &str = "CN=larder-worker,O=Example";

fn osbs(pki: &TestPki) -> reqwest::Client {
    pki.http(Some(&pki.client(&[
        (DnType::OrganizationName, "Example"),
        (DnType::CommonName, "osbs"),
    ])))
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osbs_with_only_a_client_certificate_submits_downloads_and_reads_everything() {
    let pki = TestPki::new("Larder test CA");
    let mut larder = Larder::new();
    larder.use_tls(&pki);
    larder.spawn("serve", &[("LARDER_REPRESENTATIVES", OSBS_DN)]);
    larder.wait_healthy().await;
    let osbs = osbs(&pki);
    let url = |path: &str| format!("{}{path}", larder.url);

    let tmp = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(tmp.path().join("repo"), "README", "hello\n");
    let mut ids = Vec::new();
    for _ in 0..2 {
        // as OSBS does: a certificate, no Authorization header, and always "user"
        let (status, created) = send(osbs.post(url("/api/v1/requests")).json(&json!({
            "repo": repo.url(), "ref": commit, "pkg_managers": [], "user": "alice",
        })))
        .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["user"], "alice");
        assert_eq!(created["submitted_by"], OSBS_DN);
        ids.push(created["id"].as_i64().unwrap());
    }
    for id in &ids {
        let done = larder.wait(*id).await;
        assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
        assert!(done["configuration_files"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"));

        let resp = osbs
            .get(url(&format!("/api/v1/requests/{id}/download")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let digest = resp.headers()["Digest"].to_str().unwrap().to_string();
        let bundle = resp.bytes().await.unwrap();
        let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bundle));
        assert_eq!(digest, format!("sha-256={sha256}"));

        for tail in [
            "environment-variables",
            "configuration-files",
            "content-manifest",
        ] {
            let (status, body) =
                send(osbs.get(url(&format!("/api/v1/requests/{id}/{tail}")))).await;
            assert_eq!(status, 200, "{tail}: {body}");
        }
        // nobody else may read what holds the repository token
        let (status, body) = larder
            .get(&format!("/api/v1/requests/{id}/environment-variables"))
            .await;
        assert_eq!(status, 401, "{body}");
    }
    let several = format!("{},{}", ids[0], ids[1]);
    for path in ["/api/v1/content-manifest", "/api/v1/sbom"] {
        let (status, body) = send(osbs.get(url(&format!("{path}?requests={several}")))).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    // a DN that is not a representative may not act for another user
    let someone = pki.http(Some(&pki.client(&[
        (DnType::OrganizationName, "Example"),
        (DnType::CommonName, "someone"),
    ])));
    let (status, body) = send(someone.post(url("/api/v1/requests")).json(&json!({
        "repo": repo.url(), "ref": commit, "pkg_managers": [], "user": "alice",
    })))
    .await;
    assert_eq!(status, 403, "{body}");

    // a certificate from another CA is refused at the handshake
    let stranger_ca = TestPki::new("Another CA");
    let stranger = stranger_ca.client(&[(DnType::CommonName, "osbs")]);
    let with_foreign_cert = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(pki.ca()).unwrap()).unwrap(),
        ])
        .identity(reqwest::Identity::from_pem(&stranger).unwrap())
        .build()
        .unwrap();
    assert!(with_foreign_cert
        .get(url("/api/v1/requests"))
        .send()
        .await
        .is_err());

    // the command line client, with a certificate only
    let osbs_pem = tmp.path().join("osbs.pem");
    std::fs::write(
        &osbs_pem,
        pki.client(&[
            (DnType::OrganizationName, "Example"),
            (DnType::CommonName, "osbs"),
        ]),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["env", &ids[0].to_string(), "--format", "json"])
        .env_clear()
        .env("LARDER_URL", &larder.url)
        .env("LARDER_CERT", &osbs_pem)
        .env("LARDER_CACERT", pki.ca())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["env", &ids[0].to_string(), "--format", "json"])
        .env_clear()
        .env("LARDER_URL", &larder.url)
        .env("LARDER_CACERT", pki.ca())
        .output()
        .unwrap();
    assert!(!out.status.success(), "anonymous read of the variables");
}

/// An api alone (no worker takes the jobs), so the test plays the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_come_from_certificates_proxies_and_tokens_and_secrets_stay_with_their_people() {
    let pki = TestPki::new("Larder test CA");
    let mut larder = Larder::new();
    larder.use_tls(&pki);
    larder.spawn(
        "api",
        &[
            ("LARDER_REPRESENTATIVES", OSBS_DN),
            ("LARDER_WORKER_USERS", WORKER_DN),
            ("LARDER_TRUSTED_PROXIES", "127.0.0.2/32"),
            ("LARDER_API_TOKENS", "carol-token=carol"),
        ],
    );
    larder.wait_healthy().await;
    let url = |path: &str| format!("{}{path}", larder.url);
    let osbs = osbs(&pki);
    let worker = pki.http(Some(&pki.client(&[
        (DnType::OrganizationName, "Example"),
        (DnType::CommonName, "larder-worker"),
    ])));
    // a reverse proxy on a trusted address, and the same header from anywhere else
    let proxy = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(pki.ca()).unwrap()).unwrap(),
        ])
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let as_user = |client: &reqwest::Client, method: reqwest::Method, path: &str, user: &str| {
        client
            .request(method, url(path))
            .header("X-Remote-User", user)
    };

    let body = json!({
        "repo": "https://github.com/org/repo.git",
        "ref": "a".repeat(40),
        "pkg_managers": [],
    });
    let (status, created) =
        send(as_user(&proxy, reqwest::Method::POST, "/api/v1/requests", "dave").json(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["user"], "dave");
    let (status, _) = send(
        as_user(
            &larder.http,
            reqwest::Method::POST,
            "/api/v1/requests",
            "dave",
        )
        .json(&body),
    )
    .await;
    assert_eq!(
        status, 401,
        "the header from an untrusted address is ignored"
    );

    let mut on_behalf = body.clone();
    on_behalf["user"] = json!("alice");
    let (status, created) = send(osbs.post(url("/api/v1/requests")).json(&on_behalf)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();

    // the worker DN may claim and report; nobody else may
    let (status, _) = send(
        osbs.post(url(&format!("/api/v1/requests/{id}/claim")))
            .json(&json!({"worker": "w-1"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, job) = send(
        worker
            .post(url(&format!("/api/v1/requests/{id}/claim")))
            .json(&json!({"worker": "w-1"})),
    )
    .await;
    assert_eq!(status, 200, "{job}");
    let token = job["repository_token"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    let index = format!("{}/repos/{id}/t/{token}/pip/simple/", larder.url);
    let (status, patched) = send(worker.patch(url(&format!("/api/v1/requests/{id}"))).json(
        &json!({
            "state": "complete",
            "state_reason": "Completed successfully",
            "environment_variables": {"PIP_INDEX_URL": {"value": index, "kind": "literal"}},
        }),
    ))
    .await;
    assert_eq!(status, 200, "{patched}");

    // who sees the token: the submitter, the user acted for, a representative, a worker
    let index_seen_by = |client: &reqwest::Client, user: Option<&str>| {
        let mut req = client.get(url(&format!("/api/v1/requests/{id}")));
        if let Some(user) = user {
            req = req.header("X-Remote-User", user);
        }
        async move {
            let (status, request) = send(req).await;
            assert_eq!(status, 200, "{request}");
            request["environment_variables"]["PIP_INDEX_URL"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(index_seen_by(&osbs, None).await, index);
    assert_eq!(index_seen_by(&worker, None).await, index);
    assert_eq!(index_seen_by(&proxy, Some("alice")).await, index);
    let redacted = index.replace(&token, "REDACTED");
    assert_eq!(index_seen_by(&proxy, Some("dave")).await, redacted);
    assert_eq!(index_seen_by(&larder.http, None).await, redacted);
    let (_, list) = send(larder.http.get(url("/api/v1/requests"))).await;
    assert!(!list.to_string().contains(&token), "{list}");

    let vars = format!("/api/v1/requests/{id}/environment-variables");
    let files = format!("/api/v1/requests/{id}/configuration-files");
    for path in [&vars, &files] {
        assert_eq!(send(larder.http.get(url(path))).await.0, 401, "{path}");
        let (status, _) = send(as_user(&proxy, reqwest::Method::GET, path, "dave")).await;
        assert_eq!(status, 403, "{path}");
        let (status, _) = send(as_user(&proxy, reqwest::Method::GET, path, "alice")).await;
        assert_eq!(status, 200, "{path}");
        let (status, _) = send(larder.http.get(url(path)).bearer_auth("carol-token")).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(send(osbs.get(url(path))).await.0, 200, "{path}");
    }
    // everything else stays anonymous-readable, as in Cachito
    let (status, _) = send(
        larder
            .http
            .get(url(&format!("/api/v1/requests/{id}/content-manifest"))),
    )
    .await;
    assert_eq!(status, 200);
}
