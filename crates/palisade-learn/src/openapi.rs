//! The OpenAPI 3.1 document of the reported endpoints.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};

use crate::collector::{Mark, Origin};
use crate::discovery::{EndpointReport, parameters};
use crate::posture::PostureReport;
use crate::state::LearnedState;

/// The HTTP methods an OpenAPI 3.1 path item can hold.
const METHODS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
];

impl LearnedState {
    /// An OpenAPI 3.1 document of the reported, not ignored endpoints
    /// (declared, matched, discovered and saved), with their path
    /// parameters.
    ///
    /// Every parameter is a required string. Templates that differ only in
    /// parameter names share one path, named after a declared or matched
    /// template when there is one, as OpenAPI requires. Operations carry an
    /// `x-palisade` extension with what was learned: origin, mark, hosts,
    /// requests, sessions and posture. Methods OpenAPI 3.1 cannot describe
    /// (`CONNECT`, extension methods) are left out.
    pub fn openapi(&self) -> Value {
        let reported = self.reported();
        let endpoints: Vec<(EndpointReport, PostureReport)> = reported
            .iter()
            .filter(|c| c.mark() != Mark::Ignored)
            .map(|c| (EndpointReport::of(c), PostureReport::of(c)))
            .filter(|(e, _)| METHODS.contains(&e.method.as_str()))
            .collect();

        // One path per shape; declared and matched names win.
        let mut by_shape: HashMap<String, &EndpointReport> = HashMap::new();
        for (e, _) in &endpoints {
            let shape = shape(&e.template);
            let entry = by_shape.entry(shape).or_insert(e);
            if entry.origin == Origin::Discovered && e.origin != Origin::Discovered {
                *entry = e;
            }
        }

        let mut paths: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
        let mut operation_ids = HashSet::new();
        for (e, posture) in &endpoints {
            let canonical = &by_shape[&shape(&e.template)].template;
            let path = canonical.replace("{*", "{");
            let method = e.method.to_ascii_lowercase();
            let item = paths.entry(path.clone()).or_default();
            if let Some(existing) = item.get_mut(&method) {
                // The same operation on another host.
                if let Some(hosts) = existing["x-palisade"]["hosts"].as_array_mut() {
                    hosts.push(json!(e.host));
                }
                continue;
            }
            let params: Vec<Value> = parameters(canonical)
                .into_iter()
                .map(|name| {
                    json!({
                        "name": name,
                        "in": "path",
                        "required": true,
                        "schema": { "type": "string" },
                    })
                })
                .collect();
            let mut responses = serde_json::Map::new();
            let classes = [
                ("1XX", e.status.informational, "informational"),
                ("2XX", e.status.success, "success"),
                ("3XX", e.status.redirection, "redirection"),
                ("4XX", e.status.client_error, "client error"),
                ("5XX", e.status.server_error, "server error"),
            ];
            for (class, count, description) in classes {
                if count > 0 || class == "2XX" {
                    responses.insert(
                        class.to_owned(),
                        json!({ "description": format!("{description} ({count} seen)") }),
                    );
                }
            }
            let mut operation_id = format!("{method}{}", identifier(&path));
            while !operation_ids.insert(operation_id.clone()) {
                operation_id.push('_');
            }
            item.insert(
                method,
                json!({
                    "operationId": operation_id,
                    "summary": format!("{} {}", e.method, path),
                    "parameters": params,
                    "responses": responses,
                    "x-palisade": {
                        "origin": e.origin,
                        "mark": e.mark,
                        "hosts": [e.host],
                        "requests": e.requests,
                        "sessions": e.sessions,
                        "posture": posture.posture,
                        "identifiers": posture.identifiers,
                    },
                }),
            );
        }

        json!({
            "openapi": "3.1.0",
            "info": {
                "title": "Endpoints learned by Palisade",
                "version": self.inner.now_secs().to_string(),
                "description": "Endpoints seen in traffic with 2xx responses, \
                    and the endpoints the user saved.",
            },
            "paths": paths,
        })
    }
}

/// A template with its parameter names erased: `/users/{}`.
fn shape(template: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "{}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `_users_var1` for `/users/{var1}`.
fn identifier(path: &str) -> String {
    path.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|s| !s.is_empty())
        .fold(String::new(), |mut out, s| {
            out.push('_');
            out.push_str(s);
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_identifiers() {
        assert_eq!(shape("/users/{id}/x"), shape("/users/{var1}/x"));
        assert_ne!(shape("/users/{id}"), shape("/users/me"));
        assert_eq!(identifier("/users/{var1}"), "_users_var1");
        assert_eq!(identifier("/"), "");
    }
}
