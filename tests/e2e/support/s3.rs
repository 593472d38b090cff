//! A real S3-compatible server for tests: moto's `moto_server`, from the venv `.ci/run` makes
//! (`.ci/tools/moto-venv`, or `LARDER_MOTO_VENV`), on a free loopback port with one bucket,
//! killed on drop. Plain std, so `common`'s tests include this file too.
//!
//! moto checks no signatures, so the raw S3 API (making the bucket, listing multipart uploads,
//! writing an object past Larder's checks) is a few lines of HTTP/1.1 here. It does tell callers
//! apart by the access key an `Authorization` header names (an anonymous caller may not
//! overwrite what a client with keys wrote), so these requests name [`CREDENTIALS`]' key.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MotoServer {
    child: Child,
    pub port: u16,
    pub bucket: String,
}

/// Access key and secret moto takes (any).
pub const CREDENTIALS: (&str, &str) = ("larder-test", "larder-test-secret");
pub const REGION: &str = "us-east-1";

impl MotoServer {
    /// The venv holding `moto_server`.
    pub fn venv() -> PathBuf {
        std::env::var_os("LARDER_MOTO_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/tools/moto-venv"))
    }

    /// A fresh server with `bucket` made. `None`, said loudly, when moto is not installed,
    /// unless `LARDER_REQUIRE_MOTO` is set (as `.ci/run` does): then that fails the test.
    pub fn start(bucket: &str) -> Option<MotoServer> {
        let program = Self::program()?;
        let port = free_port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut moto = MotoServer {
            child,
            port,
            bucket: bucket.to_string(),
        };
        // ready once it makes the bucket
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = moto.request("PUT", &format!("/{bucket}"), &[], b"") {
                return Some(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server on port {port} exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A server that checks every request's SigV4 signature, with `bucket` made: moto's
    /// `INITIAL_NO_AUTH_ACTION_COUNT` lets the first five requests in unchecked, which make an
    /// IAM user allowed all of S3, its access key, and the bucket. Returns the key and secret.
    /// (This server's raw requests ([`Self::request`]) are refused after that.)
    pub fn start_checking_signatures(bucket: &str) -> Option<(MotoServer, (String, String))> {
        let program = Self::program()?;
        let port = free_port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "5")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let moto = MotoServer {
            child,
            port,
            bucket: bucket.to_string(),
        };
        // listening is ready: a request would use up one of the five
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let iam = |form: &str| {
            let (status, body) = moto
                .request_as(
                    "POST",
                    "/",
                    "iam",
                    "application/x-www-form-urlencoded",
                    &[],
                    format!("{form}&Version=2010-05-08").as_bytes(),
                )
                .expect("IAM request");
            let body = String::from_utf8_lossy(&body).into_owned();
            assert_eq!(status, 200, "{form}: {body}");
            body
        };
        let element = |xml: &str, name: &str| {
            let start = xml.find(&format!("<{name}>")).expect(name) + name.len() + 2;
            let end = xml[start..].find('<').expect(name) + start;
            xml[start..end].to_string()
        };
        iam("Action=CreateUser&UserName=larder");
        let policy = iam(
            "Action=CreatePolicy&PolicyName=s3-all&PolicyDocument=%7B%22Version%22%3A%222012-10-17%22%2C\
             %22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3A*%22%2C\
             %22Resource%22%3A%22*%22%7D%5D%7D",
        );
        let arn = element(&policy, "Arn");
        iam(&format!(
            "Action=AttachUserPolicy&UserName=larder&PolicyArn={}",
            arn.replace(':', "%3A").replace('/', "%2F")
        ));
        let key = iam("Action=CreateAccessKey&UserName=larder");
        let credentials = (
            element(&key, "AccessKeyId"),
            element(&key, "SecretAccessKey"),
        );
        let (status, body) = moto
            .request("PUT", &format!("/{bucket}"), &[], b"")
            .expect("CreateBucket");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        Some((moto, credentials))
    }

    /// `moto_server`, or `None` (said loudly) when it is not installed, unless
    /// `LARDER_REQUIRE_MOTO` is set: then that fails the test.
    fn program() -> Option<PathBuf> {
        let program = Self::venv().join("bin/moto_server");
        if program.exists() {
            return Some(program);
        }
        assert!(
            std::env::var_os("LARDER_REQUIRE_MOTO").is_none(),
            "LARDER_REQUIRE_MOTO is set but there is no {}",
            program.display()
        );
        eprintln!(
            "\n*** SKIPPED: no S3 server: {} is missing (run .ci/run, or set LARDER_MOTO_VENV). \
             This test checked nothing. ***\n",
            program.display()
        );
        None
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An S3 request signed with no valid signature: the status and the body.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        self.request_as(
            method,
            path_and_query,
            "s3",
            "application/octet-stream",
            headers,
            body,
        )
    }

    /// A request to `service` (moto routes by the credential scope) with no valid signature.
    pub fn request_as(
        &self,
        method: &str,
        path_and_query: &str,
        service: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut head = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Content-Type: {content_type}\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={}/20260101/{REGION}/{service}/aws4_request, \
             SignedHeaders=host, Signature={}\r\n",
            self.port,
            body.len(),
            CREDENTIALS.0,
            "0".repeat(64)
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:.200}")))?;
        let body = match response.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => response[end + 4..].to_vec(),
            None => Vec::new(),
        };
        Ok((status, body))
    }

    /// The keys of the bucket's multipart uploads in progress (ListMultipartUploads).
    pub fn multipart_uploads(&self) -> Vec<String> {
        let (status, body) = self
            .request("GET", &format!("/{}?uploads", self.bucket), &[], b"")
            .expect("ListMultipartUploads");
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "ListMultipartUploads: {body}");
        body.split("<Upload>")
            .skip(1)
            .filter_map(|upload| {
                let start = upload.find("<Key>")? + "<Key>".len();
                let end = upload[start..].find("</Key>")? + start;
                Some(upload[start..end].to_string())
            })
            .collect()
    }

    /// Write `bytes` as the object `key` (the bucket's key, any prefix included) with these
    /// user `metadata`, straight through the S3 API.
    pub fn put_raw(&self, key: &str, bytes: &[u8], metadata: &[(&str, &str)]) {
        let headers: Vec<(String, &str)> = metadata
            .iter()
            .map(|(name, value)| (format!("x-amz-meta-{name}"), *value))
            .collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let (status, body) = self
            .request("PUT", &format!("/{}/{key}", self.bucket), &headers, bytes)
            .expect("PutObject");
        assert_eq!(status, 200, "PutObject: {}", String::from_utf8_lossy(&body));
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
