//! `openapi.yaml` matches the routes, and real responses match its schemas.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn spec() -> Value {
    let yaml: serde_yaml::Value = serde_yaml::from_str(api::docs::OPENAPI_YAML).unwrap();
    serde_json::to_value(yaml).unwrap()
}

#[test]
fn every_route_is_documented_and_every_documented_path_is_routed() {
    let spec = spec();
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| *m != "parameters")
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_uppercase(), p.replace("{tail:.*}", "{tail}")))
        .collect();
    assert_eq!(documented, routed);
}

/// The web pages for people (`api::ui::UI_ROUTES`, HTML under `/ui/`) are not the API: they
/// are registered apart from `api::ROUTES` and left out of openapi.yaml (and so of
/// schemathesis); `/` (the start page) and `/api` (this document rendered) are documented.
#[test]
fn the_web_pages_are_outside_the_api_and_its_document() {
    let spec = spec();
    let paths = spec["paths"].as_object().unwrap();
    for route in api::ui::UI_ROUTES {
        assert!(route.starts_with("/ui/"), "{route} is not under /ui/");
        assert!(!paths.contains_key(*route), "{route} is documented as API");
    }
    assert!(api::ROUTES
        .iter()
        .all(|(_, path)| !path.starts_with("/ui/")));
    for page in ["/", "/api"] {
        assert!(
            spec["paths"][page]["get"]["responses"]["200"]["content"]["text/html"].is_object(),
            "{page} is documented as an HTML page"
        );
    }
}

/// A small JSON Schema (OpenAPI 3.0 subset) check: type, nullable, enum, properties, required,
/// additionalProperties, items, allOf, anyOf, $ref.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(spec, &spec["components"]["schemas"][name], value, at);
    }
    if value.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(spec, s, value, at)?;
        }
    }
    if let Some(any) = schema["anyOf"].as_array() {
        let errors: Vec<String> = any
            .iter()
            .filter_map(|s| check(spec, s, value, at).err())
            .collect();
        if errors.len() == any.len() {
            return Err(format!("{at}: matches no anyOf branch: {errors:?}"));
        }
    }
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            return Err(format!("{at}: expected {t}, got {value}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(obj) = value.as_object() {
        let props = schema["properties"].as_object();
        for req in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(req.as_str().unwrap()) {
                return Err(format!("{at}: missing required {req}"));
            }
        }
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(spec, s, v, &format!("{at}.{k}"))?,
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => return Err(format!("{at}: unexpected property {k}")),
                    s @ Value::Object(_) => check(spec, s, v, &format!("{at}.{k}"))?,
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(spec, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Check a live answer against the documented response of `method path` for its status.
fn check_response(spec: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let op = &spec["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let mut response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which is not documented"
    );
    if let Some(r) = response["$ref"].as_str() {
        response =
            &spec["components"]["responses"][r.trim_start_matches("#/components/responses/")];
    }
    if let Some(schema) = response["content"]["application/json"].get("schema") {
        if let Err(e) = check(spec, schema, body, "$") {
            panic!("{method} {path} {status}: {e}\nbody: {body}");
        }
    }
}

#[tokio::test]
async fn live_responses_match_their_schemas() {
    let spec = spec();
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let lib = GitRepo::new(work.path().join("lib"));
    lib.write("x", "x");
    lib.commit("lib");
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("a", "a");
    repo.add_submodule(&lib, "lib");
    let commit = repo.commit("c");

    let (status, created) = larder
        .post(
            "/api/v1/requests",
            &json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["git-submodule"]}),
        )
        .await;
    check_response(&spec, "post", "/api/v1/requests", status, &created);
    let id = created["id"].as_i64().unwrap();
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete");
    let failed = larder.submit(json!({"repo": repo.url(), "ref": "0123456789abcdef0123456789abcdef01234567", "pkg_managers": []})).await;
    larder.wait(failed).await;

    let repo_name = repo.url().trim_start_matches('/').to_string();
    let today = &done["updated"].as_str().unwrap()[..10];
    let calls = [
        ("/api/v1/status", "/api/v1/status".to_string()),
        ("/api/v1/status/short", "/api/v1/status/short".to_string()),
        (
            "/api/v1/request-metrics",
            "/api/v1/request-metrics".to_string(),
        ),
        (
            "/api/v1/request-metrics",
            format!("/api/v1/request-metrics?per_page=1&finished_to={today}&error_origin=client"),
        ),
        (
            "/api/v1/request-metrics",
            "/api/v1/request-metrics?finished_from=yesterday".to_string(),
        ),
        (
            "/api/v1/request-metrics",
            "/api/v1/request-metrics?page=9".to_string(),
        ),
        (
            "/api/v1/request-metrics/summary",
            format!("/api/v1/request-metrics/summary?finished_from=2000-01-01&finished_to={today}"),
        ),
        (
            "/api/v1/request-metrics/summary",
            "/api/v1/request-metrics/summary?finished_from=2000-01-01&finished_to=2000-01-02"
                .to_string(),
        ),
        (
            "/api/v1/request-metrics/summary",
            "/api/v1/request-metrics/summary?finished_to=x".to_string(),
        ),
        (
            "/api/v1/request-metrics/summary",
            "/api/v1/request-metrics/summary?bogus=1".to_string(),
        ),
        (
            "/api/v1/requests",
            format!("/api/v1/requests?created_from=2000-01-01&created_to={today}&error_origin=client&error_type=InvalidRequestData"),
        ),
        (
            "/api/v1/requests",
            "/api/v1/requests?created_to=never".to_string(),
        ),
        ("/api/v1/requests", "/api/v1/requests".to_string()),
        (
            "/api/v1/content-manifest",
            format!("/api/v1/content-manifest?requests={id}"),
        ),
        (
            "/api/v1/content-manifest",
            format!("/api/v1/content-manifest?requests={failed}"),
        ),
        ("/api/v1/sbom", format!("/api/v1/sbom?requests={id}")),
        (
            "/api/v1/sbom",
            format!("/api/v1/sbom?requests={id}&format=spdx"),
        ),
        ("/api/v1/sbom", format!("/api/v1/sbom?requests={id}&format=x")),
        (
            "/api/v1/requests/{id}/sbom",
            format!("/api/v1/requests/{id}/sbom"),
        ),
        (
            "/api/v1/requests/{id}/sbom",
            format!("/api/v1/requests/{id}/sbom?format=spdx"),
        ),
        (
            "/api/v1/requests/{id}/sbom",
            format!("/api/v1/requests/{id}/sbom?format=xml"),
        ),
        (
            "/api/v1/requests/{id}/sbom",
            format!("/api/v1/requests/{failed}/sbom"),
        ),
        (
            "/api/v1/requests/{id}/sbom",
            "/api/v1/requests/999999999/sbom".to_string(),
        ),
        (
            "/api/v1/dependencies",
            "/api/v1/dependencies?type=git-submodule&name=lib".to_string(),
        ),
        (
            "/api/v1/dependencies",
            "/api/v1/dependencies?purl=lodash".to_string(),
        ),
        (
            "/api/v1/requests",
            "/api/v1/requests?verbose=true".to_string(),
        ),
        (
            "/api/v1/requests",
            "/api/v1/requests?state=bogus".to_string(),
        ),
        (
            "/api/v1/requests/latest",
            format!("/api/v1/requests/latest?repo_name={repo_name}&ref={commit}"),
        ),
        ("/api/v1/requests/{id}", format!("/api/v1/requests/{id}")),
        (
            "/api/v1/requests/{id}",
            format!("/api/v1/requests/{failed}"),
        ),
        (
            "/api/v1/requests/{id}",
            "/api/v1/requests/99999".to_string(),
        ),
        (
            "/api/v1/requests/{id}/environment-variables",
            format!("/api/v1/requests/{id}/environment-variables"),
        ),
        (
            "/api/v1/requests/{id}/configuration-files",
            format!("/api/v1/requests/{id}/configuration-files"),
        ),
        (
            "/api/v1/requests/{id}/content-manifest",
            format!("/api/v1/requests/{id}/content-manifest"),
        ),
        (
            "/api/v1/requests/{id}/content-manifest",
            format!("/api/v1/requests/{failed}/content-manifest"),
        ),
        (
            "/api/v1/requests/{id}/packages",
            format!("/api/v1/requests/{id}/packages"),
        ),
        (
            "/api/v1/requests/{id}/download",
            format!("/api/v1/requests/{failed}/download"),
        ),
        (
            "/repos/{id}/{pm}/{tail}",
            format!("/repos/{id}/npm/left-pad"),
        ),
    ];
    for (template, path) in calls {
        let (status, body) = larder.get(&path).await;
        check_response(&spec, "get", template, status, &body);
    }
    // a worker's claim of a final request is refused, and says why
    let (status, body) = larder
        .post(
            &format!("/api/v1/requests/{id}/claim"),
            &json!({"worker": "test-1"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    check_response(&spec, "post", "/api/v1/requests/{id}/claim", status, &body);
    // Timestamps are naive UTC with microseconds.
    let created_at = done["created"].as_str().unwrap();
    assert_eq!(created_at.len(), 26, "{created_at}");
    assert_eq!(&created_at[19..20], ".");
    // The documentation page renders, at /api; the start page links it.
    let page = larder.text("/api").await;
    assert!(page.contains("/api/v1/requests/{id}/download"));
    let start = larder.text("/").await;
    assert!(start.contains("href=\"/api\"") && start.contains("href=\"/ui/requests\""));
}
