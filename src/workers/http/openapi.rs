//! `GET /openapi.json`, generated from the route table itself so it cannot
//! drift from what is routed, and `GET /docs`, a self-contained page that
//! renders it (no CDN).

use serde_json::{json, Map, Value};

use crate::api::{Contract, Route};

fn operation(r: &Route) -> Value {
    let mut security = vec![];
    if r.contract == Contract::V9 {
        if r.session || r.signature_optional {
            security.push(json!({ "temboardSignature": [] }));
        }
        if r.signature_optional {
            // OpenAPI's "no credential needed either".
            security.push(json!({}));
        }
    } else if r.session {
        security.push(json!({ "session": [] }));
        security.push(json!({ "token": [] }));
    }
    if r.key {
        security.push(json!({ "agentKey": [] }));
        security.push(json!({ "agentKeyQuery": [] }));
    }
    let params: Vec<Value> = r
        .path
        .split('/')
        .filter(|s| s.starts_with('{') && s.ends_with('}'))
        .map(|s| json!({ "name": s[1..s.len() - 1].trim_end_matches('*'), "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    let mut op = json!({
        "operationId": r.id,
        "summary": format!("{} {}", r.method, r.path),
        "tags": [r.plugin.unwrap_or("core")],
        "parameters": params,
        "responses": {
            "200": { "description": "Success", "content": { "application/json": { "schema": {} } } },
            "default": { "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
        }
    });
    if !security.is_empty() {
        op["security"] = Value::Array(security);
    }
    if r.method == "POST" {
        op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object" } } } });
    }
    op
}

/// The OpenAPI 3 document of every route. A (method, path) served in both
/// contracts is one operation whose security lists both ways in (its 9.x
/// shape is named in the description).
pub fn document(routes: &[&Route]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for &r in routes {
        let entry = paths
            .entry(r.path.replace("*}", "}"))
            .or_insert_with(|| json!({}));
        let method = r.method.to_lowercase();
        let op = operation(r);
        match entry.get_mut(&method) {
            Some(existing) => {
                // Either contract's way in; `{}` where one of them needs no
                // credential at all.
                let anonymous = json!({});
                let mine = existing.get("security").and_then(Value::as_array).cloned();
                let theirs = op.get("security").and_then(Value::as_array).cloned();
                let merged = match (mine, theirs) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    (Some(mut a), None) | (None, Some(mut a)) => {
                        if !a.contains(&anonymous) {
                            a.push(anonymous);
                        }
                        Some(a)
                    }
                    (None, None) => None,
                };
                if let Some(list) = merged {
                    existing["security"] = Value::Array(list);
                }
                existing["description"] = json!(format!(
                    "Also served to signed temBoard 9.x requests, in the 9.x shape (operation {}).",
                    r.id
                ));
            }
            None => entry[method] = op,
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "temBoard agent",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "HTTPS REST API of the temBoard PostgreSQL agent (wire-compatible with temboard-agent 2.x). Errors are {\"error\": \"...\"}."
        },
        "paths": paths,
        "components": {
            "schemas": { "Error": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] } },
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "header", "name": "X-Session" },
                "token": { "type": "http", "scheme": "bearer" },
                "agentKey": { "type": "apiKey", "in": "header", "name": "X-TemBoard-Agent-Key" },
                "agentKeyQuery": { "type": "apiKey", "in": "query", "name": "key" },
                "temboardSignature": { "type": "apiKey", "in": "header", "name": "X-TemBoard-Signature", "description": "temBoard 8.x-10.x: RSASSA-PSS SHA-256 signature of the canonical request (with X-TemBoard-Date, X-TemBoard-User, X-TemBoard-Request-Id); see docs/api.md" }
            }
        }
    })
}

/// The `/docs` page: fetches `/openapi.json` and lists the operations.
pub const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>temBoard agent API</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}code{background:#eee;padding:0 .2em}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em;text-align:left}
.m{font-weight:bold;width:5em}</style></head>
<body><h1>temBoard agent API</h1><p id="info"></p><table><thead><tr><th>method</th><th>path</th><th>group</th><th>authentication</th></tr></thead><tbody id="ops"></tbody></table>
<script>
fetch('openapi.json').then(r => r.json()).then(doc => {
  document.getElementById('info').textContent = doc.info.description + ' Version ' + doc.info.version + '.';
  const body = document.getElementById('ops');
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const tr = document.createElement('tr');
      const auth = (op.security || []).map(s => Object.keys(s)[0]).join(', ') || 'none';
      for (const [cls, text] of [['m', method.toUpperCase()], ['', path], ['', op.tags[0]], ['', auth]]) {
        const td = document.createElement('td'); td.className = cls; td.textContent = text; tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }
});
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::http::routes::all;

    #[test]
    fn every_route_is_described_and_nothing_else() {
        let doc = document(&all());
        let paths = doc["paths"].as_object().unwrap();
        let mut described = 0;
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                assert!(
                    all().iter().any(|r| r.path.replace("*}", "}") == *path
                        && r.method.to_lowercase() == *method),
                    "{method} {path} described but not routed"
                );
                described += 1;
            }
        }
        let distinct: std::collections::HashSet<_> = all()
            .iter()
            .map(|r| (r.method, r.path.replace("*}", "}")))
            .collect();
        assert_eq!(described, distinct.len(), "every route described once");
        assert_eq!(doc["openapi"], "3.0.3");
    }
}
