//! The worker's calls to the api (workers hold no database credentials).

use crate::artifact_spool::ArtifactSpool;
use base64::Engine;
use bytes::Bytes;
use common::{ConfigContent, ConfigFile, EnvVars, Failure, Job, PackagesData, RequestState};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    #[error("the api answered {status} to {what}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("the api could not be reached for {what}: {source}")]
    Http {
        what: String,
        source: reqwest::Error,
    },
    /// The artifacts to report could not be read back from their spool.
    #[error("cannot read back the artifacts to report: {0}")]
    Spool(String),
}

impl ApiClientError {
    /// A 4xx answer will not change on retry.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Status { status, .. } if (400..500).contains(status) && *status != 408 && *status != 429)
    }

    /// 409: the request is final, or another attempt holds it.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Status { status: 409, .. })
    }
}

/// What a claim got: the job for a new attempt, or why not.
pub enum Claim {
    Granted(Box<Job>),
    Refused(String),
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// The attempt this client reports for (`X-Larder-Attempt`), once a claim granted one.
    attempt: Option<i32>,
    /// Flushed before a final state is reported.
    request_logs: Option<crate::request_log::RequestLogs>,
}

const ATTEMPTS: u32 = 6;

impl ApiClient {
    /// `extra_roots`: PEM CA certificates trusted besides the system's.
    pub fn new(base: &str, token: Option<String>, extra_roots: Option<&str>) -> Self {
        let roots = extra_roots
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(pem.as_bytes()).ok())
            .unwrap_or_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .tls_certs_merge(roots)
            .build()
            .expect("TLS backend initializes");
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            attempt: None,
            request_logs: None,
        }
    }

    /// A client that sends a request's waiting log lines before reporting its final state.
    pub fn with_request_logs(self, request_logs: crate::request_log::RequestLogs) -> Self {
        Self {
            request_logs: Some(request_logs),
            ..self
        }
    }

    /// Send the request's waiting log lines now (for a few seconds at most).
    pub async fn flush_request_log(&self, id: i64) {
        if let Some(logs) = &self.request_logs {
            logs.flush(id).await;
        }
    }

    /// Append whole lines to the request's log: chunk `seq` of `writer`. One try, within
    /// `timeout`: the request log retries in its next round.
    pub async fn append_log(
        &self,
        id: i64,
        writer: &str,
        seq: i64,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(), ApiClientError> {
        let path = format!("/api/v1/requests/{id}/logs");
        let what = format!("POST {path}");
        let mut req = self
            .http
            .post(format!(
                "{}{path}?writer={}&seq={seq}",
                self.base,
                common::percent::encode_component(writer)
            ))
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .timeout(timeout)
            .body(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                Err(ApiClientError::Status { what, status, body })
            }
            Err(source) => Err(ApiClientError::Http { what, source }),
        }
    }

    /// A client whose reports carry `attempt`, so the api refuses them once it is superseded.
    pub fn for_attempt(&self, attempt: i32) -> Self {
        Self {
            attempt: Some(attempt),
            ..self.clone()
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Bytes>,
    ) -> Result<reqwest::Response, ApiClientError> {
        self.call_with(method, path, body, ATTEMPTS).await
    }

    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Bytes>,
        tries: u32,
    ) -> Result<reqwest::Response, ApiClientError> {
        let what = format!("{method} {path}");
        let mut delay = Duration::from_millis(500);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            if let Some(n) = self.attempt {
                req = req.header(common::ATTEMPT_HEADER, n.to_string());
            }
            if let Some(body) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    // shared, not copied, on every attempt
                    .body(body.clone());
            }
            let err = match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.text().await.unwrap_or_default();
                    ApiClientError::Status {
                        what: what.clone(),
                        status,
                        body,
                    }
                }
                Err(source) => ApiClientError::Http {
                    what: what.clone(),
                    source,
                },
            };
            if err.is_permanent() || attempt >= tries {
                return Err(err);
            }
            tracing::warn!(error = %err, attempt, "api call failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    /// Take the request for a new attempt.
    pub async fn claim(
        &self,
        id: i64,
        worker: &str,
        redelivered: bool,
    ) -> Result<Claim, ApiClientError> {
        let body = json_bytes(&json!({"worker": worker, "redelivered": redelivered}));
        let resp = match self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/requests/{id}/claim"),
                Some(&body),
            )
            .await
        {
            Ok(resp) => resp,
            Err(ApiClientError::Status {
                status: 409, body, ..
            }) => {
                let reason = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or(body);
                return Ok(Claim::Refused(reason));
            }
            Err(e) => return Err(e),
        };
        resp.json()
            .await
            .map(|job| Claim::Granted(Box::new(job)))
            .map_err(|source| ApiClientError::Http {
                what: "the job".into(),
                source,
            })
    }

    /// Renew this attempt's lease (one try: the next beat comes soon enough).
    pub async fn heartbeat(&self, id: i64, attempt: i32) -> Result<(), ApiClientError> {
        self.call_with(
            reqwest::Method::POST,
            &format!("/api/v1/requests/{id}/heartbeat"),
            Some(&json_bytes(&json!({ "attempt": attempt }))),
            1,
        )
        .await
        .map(drop)
    }

    async fn patch(&self, id: i64, body: Value) -> Result<(), ApiClientError> {
        self.call(
            reqwest::Method::PATCH,
            &format!("/api/v1/requests/{id}"),
            Some(&json_bytes(&body)),
        )
        .await
        .map(drop)
    }

    pub async fn progress(&self, id: i64, reason: &str) -> Result<(), ApiClientError> {
        tracing::info!(reason, "progress");
        self.patch(
            id,
            json!({"state": RequestState::InProgress, "state_reason": reason}),
        )
        .await
    }

    /// The request is complete, its bundle the blob `bundle_sha256` (hex).
    pub async fn complete(&self, id: i64, bundle_sha256: &str) -> Result<(), ApiClientError> {
        self.flush_request_log(id).await;
        self.patch(
            id,
            json!({"state": RequestState::Complete, "state_reason": "Completed successfully", "bundle_sha256": bundle_sha256}),
        )
        .await
    }

    pub async fn fail(&self, id: i64, failure: &Failure) -> Result<(), ApiClientError> {
        self.flush_request_log(id).await;
        self.patch(
            id,
            json!({"state": RequestState::Failed, "state_reason": failure.message, "error_origin": failure.origin(), "error_type": failure.error_type()}),
        )
        .await
    }

    pub async fn report(
        &self,
        id: i64,
        env: &EnvVars,
        data: PackagesData,
        artifacts: ArtifactSpool,
        files: Vec<ConfigFile>,
    ) -> Result<(), ApiClientError> {
        let packages_count = data.packages.len();
        let dependencies_count = data.merged_dependencies().len();
        // serialized straight to bytes: a serde_json::Value of thousands of artifacts costs
        // several times the body (and fragments the heap); the structs go before the api,
        // in this same process under `serve`, parses its copy
        let data_json = json_bytes(&data);
        drop(data);
        self.call(
            reqwest::Method::PUT,
            &format!("/api/v1/requests/{id}/packages"),
            Some(&data_json),
        )
        .await?;
        drop(data_json);
        self.report_artifacts(id, artifacts).await?;
        // one file per body, each file gone once its body is made: a rewritten lockfile is
        // as large as the lockfile
        for f in files {
            let body = config_file_body(&f);
            drop(f);
            self.call(
                reqwest::Method::POST,
                &format!("/api/v1/requests/{id}/configuration-files"),
                Some(&body),
            )
            .await?;
        }
        self.patch(
            id,
            json!({"environment_variables": env, "packages_count": packages_count, "dependencies_count": dependencies_count}),
        )
        .await
    }
}

impl ApiClient {
    /// The artifacts in JSON bodies of about [`ARTIFACTS_BODY_BYTES`]: the first replaces what
    /// was recorded (`PUT`, so a redelivered job starts over), the others add to it (`POST`).
    async fn report_artifacts(
        &self,
        id: i64,
        artifacts: ArtifactSpool,
    ) -> Result<(), ApiClientError> {
        let path = format!("/api/v1/requests/{id}/artifacts");
        let mut method = reqwest::Method::PUT;
        let spooled = |e: std::io::Error| ApiClientError::Spool(e.to_string());
        for body in artifacts
            .into_bodies(ARTIFACTS_BODY_BYTES)
            .map_err(spooled)?
        {
            let body = body.map_err(spooled)?;
            self.call(method.clone(), &path, Some(&Bytes::from(body)))
                .await?;
            method = reqwest::Method::POST;
        }
        Ok(())
    }
}

/// The size the artifacts' report bodies are cut to (the api parses each one whole).
const ARTIFACTS_BODY_BYTES: usize = 2 << 20;

/// A JSON request body, serialized once (retries resend the same bytes):
/// `[{"content": <base64>, "path": …, "type": "base64"}]`, or for a file already in the store
/// `[{"path": …, "sha256": <hex>, "type": "stored"}]`.
fn config_file_body(f: &ConfigFile) -> Bytes {
    let content = match &f.content {
        ConfigContent::Inline(content) => content,
        ConfigContent::Stored(sha256) => {
            return json_bytes(&json!([{"path": f.path, "sha256": sha256.hex(), "type": "stored"}]))
        }
    };
    let encoded = base64::encoded_len(content.len(), true).expect("a file fits in memory");
    let mut body = Vec::with_capacity(encoded + f.path.len() + 64);
    body.extend_from_slice(b"[{\"content\":\"");
    let start = body.len();
    body.resize(start + encoded, 0);
    base64::engine::general_purpose::STANDARD
        .encode_slice(content, &mut body[start..])
        .expect("sized for it");
    body.extend_from_slice(b"\",\"path\":");
    serde_json::to_writer(&mut body, &f.path).expect("serializable");
    body.extend_from_slice(b",\"type\":\"base64\"}]");
    Bytes::from(body)
}

fn json_bytes<T: serde::Serialize + ?Sized>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("serializable"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::ConfigFileBase64;

    #[test]
    fn a_configuration_file_body_is_the_json_the_api_reads() {
        let file = ConfigFile::inline(
            "app/a \"b\".json",
            (0..=255u8).cycle().take(1000).collect::<Vec<_>>(),
        );
        let parsed: Vec<ConfigFileBase64> =
            serde_json::from_slice(&config_file_body(&file)).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].path, file.path);
        assert_eq!(parsed[0].kind, "base64");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&parsed[0].content)
                .unwrap(),
            file.inline_content().unwrap()
        );
        let digest =
            common::digest::Digest::new(common::digest::HashAlgorithm::Sha256, &[7; 32]).unwrap();
        let stored = ConfigFile {
            path: "app/package-lock.json".into(),
            content: ConfigContent::Stored(digest.clone()),
        };
        let parsed: serde_json::Value = serde_json::from_slice(&config_file_body(&stored)).unwrap();
        assert_eq!(
            parsed,
            json!([{"path": "app/package-lock.json", "sha256": digest.hex(), "type": "stored"}])
        );
    }
}
