//! The `subsonic-response` envelope in both of the protocol's forms. Handlers build one JSON
//! value; XML is derived from it by the rule the Subsonic formats share: scalars are
//! attributes, objects are child elements, arrays repeat their element, and a field named
//! `value` is the element's text. So the two forms cannot drift apart.

use serde_json::{Map, Value, json};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// Subsonic API version implemented.
pub const API_VERSION: &str = "1.16.1";
/// XML namespace of every element.
pub const XMLNS: &str = "http://subsonic.org/restapi";

/// `f=`: the response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// XML (the protocol's default).
    Xml,
    /// JSON.
    Json,
}

impl Format {
    /// From `f`; anything unknown (including `jsonp`, not supported) is XML, as the spec's
    /// default.
    pub fn parse(f: Option<&str>) -> Format {
        match f {
            Some("json") => Format::Json,
            _ => Format::Xml,
        }
    }
}

fn envelope(status: &str, body: Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("status".into(), status.into());
    m.insert("version".into(), API_VERSION.into());
    m.insert("type".into(), "veza".into());
    m.insert("serverVersion".into(), crate::version::VERSION.into());
    m.insert("openSubsonic".into(), true.into());
    m.extend(body);
    m
}

/// A successful response carrying `body`'s fields.
pub fn ok(format: Format, body: Map<String, Value>) -> Response {
    render(format, envelope("ok", body))
}

/// A failed response (HTTP 200, as clients expect).
pub fn failed(format: Format, code: u32, message: &str) -> Response {
    let mut body = Map::new();
    body.insert("error".into(), json!({"code": code, "message": message}));
    render(format, envelope("failed", body))
}

fn render(format: Format, root: Map<String, Value>) -> Response {
    let (bytes, ctype) = match format {
        Format::Json => (
            serde_json::to_vec(&json!({ "subsonic-response": root }))
                .expect("a JSON value serialises"),
            "application/json",
        ),
        Format::Xml => (to_xml(&root).into_bytes(), "text/xml; charset=utf-8"),
    };
    let mut resp = Response::new(bytes.into());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The XML document for an envelope.
pub fn to_xml(root: &Map<String, Value>) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    element(&mut out, "subsonic-response", root, Some(XMLNS));
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn element(out: &mut String, name: &str, fields: &Map<String, Value>, ns: Option<&str>) {
    out.push('<');
    out.push_str(name);
    if let Some(ns) = ns {
        out.push_str(&format!(r#" xmlns="{ns}""#));
    }
    let mut text = None;
    for (k, v) in fields {
        match scalar(v) {
            Some(s) if k == "value" => text = Some(s),
            Some(s) => {
                out.push_str(&format!(r#" {k}="{}""#, quick_xml::escape::escape(&s)));
            }
            None => {}
        }
    }
    let children: Vec<(&String, &Value)> = fields
        .iter()
        .filter(|(_, v)| v.is_object() || v.is_array())
        .collect();
    if children.is_empty() && text.is_none() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    if let Some(t) = text {
        out.push_str(&quick_xml::escape::escape(&t));
    }
    for (k, v) in children {
        match v {
            Value::Object(m) => element(out, k, m, None),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(m) => element(out, k, m, None),
                        other => {
                            if let Some(s) = scalar(other) {
                                out.push_str(&format!(
                                    "<{k}>{}</{k}>",
                                    quick_xml::escape::escape(&s)
                                ));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out.push_str(&format!("</{name}>"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_mirrors_the_json_shape() {
        let mut body = Map::new();
        body.insert(
            "genres".into(),
            json!({"genre": [{"value": "Rock & Roll", "songCount": 2, "albumCount": 1}]}),
        );
        body.insert(
            "openSubsonicExtensions".into(),
            json!([{"name": "formPost", "versions": [1]}]),
        );
        let xml = to_xml(&envelope("ok", body));
        assert!(
            xml.starts_with(
                r#"<?xml version="1.0" encoding="UTF-8"?><subsonic-response xmlns="http://subsonic.org/restapi" "#
            ),
            "{xml}"
        );
        assert!(xml.contains(r#" status="ok""#) && xml.contains(r#" version="1.16.1""#));
        assert!(
            xml.contains(
                r#"<genres><genre albumCount="1" songCount="2">Rock &amp; Roll</genre></genres>"#
            ),
            "{xml}"
        );
        assert!(xml.contains(r#"<openSubsonicExtensions name="formPost"><versions>1</versions></openSubsonicExtensions>"#), "{xml}");
        assert!(xml.contains(r#"openSubsonic="true""#));
    }

    #[test]
    fn format_defaults_to_xml() {
        assert_eq!(Format::parse(None), Format::Xml);
        assert_eq!(Format::parse(Some("json")), Format::Json);
        assert_eq!(Format::parse(Some("jsonp")), Format::Xml);
    }
}
