//! The OpenAPI document and a rendered page of it at `/api`.

use actix_web::HttpResponse;

pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}

fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_double_quoted_attribute(s)
}

/// Render the OpenAPI document server-side: no script, no CDN.
pub async fn index() -> HttpResponse {
    let doc: serde_yaml::Value = serde_yaml::from_str(OPENAPI_YAML).unwrap_or_default();
    let title = doc["info"]["title"].as_str().unwrap_or("Larder API");
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}code{{background:#eee;padding:0 .2em}}h3{{margin-bottom:.2em}}.m{{font-weight:bold;text-transform:uppercase}}</style></head><body><h1>{t}</h1><p>{d}</p><p>Machine-readable: <a href=\"/openapi.yaml\">openapi.yaml</a>. Pages for people: <a href=\"/\">the start page</a>.</p>",
        t = escape(title),
        d = escape(doc["info"]["description"].as_str().unwrap_or(""))
    );
    if let Some(paths) = doc["paths"].as_mapping() {
        for (path, ops) in paths {
            let path = path.as_str().unwrap_or_default();
            for (method, op) in ops.as_mapping().into_iter().flatten() {
                let method = method.as_str().unwrap_or_default();
                if method == "parameters" {
                    continue;
                }
                html.push_str(&format!(
                    "<h3><span class=\"m\">{}</span> <code>{}</code></h3><p>{}</p>",
                    escape(method),
                    escape(path),
                    escape(
                        op["summary"]
                            .as_str()
                            .or(op["description"].as_str())
                            .unwrap_or("")
                    )
                ));
                if let Some(params) = op["parameters"].as_sequence() {
                    html.push_str("<ul>");
                    for p in params {
                        html.push_str(&format!(
                            "<li><code>{}</code> ({}) {}</li>",
                            escape(p["name"].as_str().unwrap_or("")),
                            escape(p["in"].as_str().unwrap_or("")),
                            escape(p["description"].as_str().unwrap_or(""))
                        ));
                    }
                    html.push_str("</ul>");
                }
                if let Some(responses) = op["responses"].as_mapping() {
                    let codes: Vec<String> = responses
                        .iter()
                        .map(|(code, r)| {
                            let code = match code {
                                serde_yaml::Value::Number(n) => n.to_string(),
                                other => other.as_str().unwrap_or("").to_string(),
                            };
                            format!(
                                "<code>{}</code> {}",
                                escape(&code),
                                escape(r["description"].as_str().unwrap_or(""))
                            )
                        })
                        .collect();
                    html.push_str(&format!("<p>Responses: {}</p>", codes.join("; ")));
                }
            }
        }
    }
    html.push_str("</body></html>");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html)
}
