//! The OpenAPI 3.1 document, generated from the route table that also builds the router.

use serde_json::{Map, Value, json};

use schemars::JsonSchema;

use super::{Access, Answer, Ctx, Route, table};
use crate::error::Result;
use crate::stats::dimension::{Counts, Dimension};

pub async fn serve(ctx: Ctx) -> Result<Answer> {
    Ok(Answer::bare(document(&table(), &ctx.app.config.public_url)))
}

/// The JSON schema of what `T` serialises to, without references (OpenAPI 3.1 takes JSON
/// Schema 2020-12): the answers' schemas come from the types that write them.
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}

/// The schema of a page of breakdown rows of each shape.
pub fn rows_schema(counts: Counts) -> fn() -> Value {
    match counts {
        Counts::Pageviews => schema_of::<Vec<crate::stats::PageviewRow>>,
        Counts::Sessions => schema_of::<Vec<crate::stats::SessionRow>>,
        Counts::Events => schema_of::<Vec<crate::stats::EventRow>>,
    }
}

/// What a query parameter means, once for every route that takes it.
fn query_param(name: &str) -> Value {
    let (description, schema) = match name {
        "limit" => (
            "Rows per page, 1–1000 (default 10)",
            json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}),
        ),
        "page" => (
            "Page number, from 1",
            json!({"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}),
        ),
        "from" => (
            "First day, YYYY-MM-DD, in the website's time zone (default: 29 days before `to`)",
            json!({"type": "string", "format": "date"}),
        ),
        "to" => (
            "Last day, YYYY-MM-DD, inclusive (default: today)",
            json!({"type": "string", "format": "date"}),
        ),
        "date" => (
            "The day, YYYY-MM-DD (default: today)",
            json!({"type": "string", "format": "date"}),
        ),
        "timezone" => (
            "IANA time zone for dates and buckets (default: the website's)",
            json!({"$ref": "#/components/schemas/TimeZone"}),
        ),
        "format" => (
            "ndjson (default) or csv",
            json!({"type": "string", "enum": ["ndjson", "csv"], "default": "ndjson"}),
        ),
        "interval" => (
            "Bucket size (default hour for at most 2 days, else day)",
            json!({"type": "string", "enum": ["hour", "day", "week", "month"]}),
        ),
        "compare" => (
            "Also the figures of the equally long period just before",
            json!({"type": "string", "enum": ["previous"]}),
        ),
        "prop" => (
            "The event property to break down by (required on event-props)",
            json!({"type": "string", "minLength": 1}),
        ),
        f if let Some(dimension) = Dimension::from_param(f) => (
            dimension.describe(),
            json!({"type": "string", "minLength": 1}),
        ),
        _ => ("", json!({"type": "string"})),
    };
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn operation(route: &Route) -> Value {
    let mut op = Map::new();
    let id: String = format!("{} {}", route.method, route.path)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    op.insert("operationId".into(), json!(id.to_lowercase()));
    op.insert("summary".into(), json!(route.summary));
    let mut description = route.description.to_string();
    let who = match route.access {
        Access::Public => "Public: no credential needed.",
        Access::Session => "Dashboard session only (API keys get 403).",
        Access::OwnSession => "The request's own dashboard session; anything else gets 401.",
        Access::Account => {
            "An API key (X-API-Key or Authorization: Bearer) or the dashboard session."
        }
    };
    if !description.is_empty() {
        description.push(' ');
    }
    description.push_str(who);
    if route.changes_state() && route.access != Access::Public {
        description.push_str(
            " Changes state: a read-only key gets 403; a session must send X-CSRF-Token.",
        );
    }
    op.insert("description".into(), json!(description));
    op.insert(
        "security".into(),
        match route.access {
            Access::Public => json!([]),
            Access::Session | Access::OwnSession => json!([{"session": []}]),
            Access::Account => json!([{"apiKey": []}, {"bearer": []}, {"session": []}]),
        },
    );
    let mut params: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    params.extend(route.query.iter().map(|q| {
        let mut param = query_param(q);
        // event-props breaks down one property of one event: both must be named.
        if route.path.ends_with("/event-props") && matches!(*q, "event" | "prop") {
            param["required"] = json!(true);
        }
        param
    }));
    if route.path == "/websites/{id}/events" {
        params.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Repeating a request with the same key within 24 hours returns the first answer and stores nothing more.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 200}}));
    }
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    if let Some(body) = route.body {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": body()}}}),
        );
    }
    let mut responses = Map::new();
    let data = (route.data)();
    let mut success = if route.path == "/openapi.json" {
        json!({"description": "The OpenAPI document", "content": {"application/json": {"schema": data}}})
    } else {
        json!({
            "description": "Success",
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["success", "data", "meta"],
                "properties": {
                    "success": {"const": true},
                    "data": data,
                    "meta": {"type": "object", "required": ["status"], "properties": {"status": {"type": "integer"}}}
                }
            }}}
        })
    };
    if route.path == super::live::PATH {
        success["content"]["text/event-stream"] =
            json!({"schema": {"type": "string", "description": super::live::EVENTS}});
    }
    if route.path == super::export::PATH {
        let mut content: Map<String, Value> = super::export::MEDIA
            .iter()
            .map(|(media, what)| {
                (
                    media.to_string(),
                    json!({"schema": {"type": "string", "description": what}}),
                )
            })
            .collect();
        // Never JSON: a schema nothing matches (every response here lists a JSON schema).
        content.insert("application/json".into(), json!({"schema": {"not": {}}}));
        success = json!({"description": "The download, NDJSON or CSV by `format`; never a JSON envelope", "content": content});
    }
    responses.insert(route.status.as_u16().to_string(), success);
    responses.insert(
        "400".into(),
        error_response("Invalid input; meta.errors names every problem"),
    );
    responses.insert(
        "429".into(),
        error_response("Rate limit exceeded; see Retry-After"),
    );
    if route.access != Access::Public || route.path == "/auth/login" {
        responses.insert(
            "401".into(),
            error_response("Missing, malformed, unknown, expired or revoked credentials"),
        );
    }
    if route.access != Access::Public || route.changes_state() {
        responses.insert("403".into(), error_response("Not allowed for this caller"));
    }
    if route.path.contains('{') {
        responses.insert("404".into(), error_response("No such resource"));
    }
    if route.path.starts_with("/websites") && route.changes_state()
        || route.path == "/account/api-keys"
    {
        responses.insert("409".into(), error_response("Conflicts with what exists"));
    }
    if route.body.is_some() {
        let limit = if route.path == "/websites/{id}/events" {
            "Body over 1 MiB"
        } else {
            "Body over 64 KiB"
        };
        responses.insert("413".into(), error_response(limit));
    }
    if route.changes_state() {
        responses.insert("503".into(), error_response("The server is shutting down"));
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

/// Every zone name the server knows (jiff's embedded database), sorted.
fn time_zones() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .collect();
    names.sort();
    names
}

pub fn document(routes: &[Route], public_url: &str) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let item = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        item[route.method.as_str().to_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Jetrack API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every answer is an envelope: {success, data, meta: {status, message?, errors?, pagination?}}. \
    Every answer carries X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, RateLimit-Policy and RateLimit. \
    Unknown query parameters are refused with 400."
        },
        "servers": [{"url": format!("{public_url}/api/v1")}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                           "description": "bj_live_ followed by 64 lowercase hex characters"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "jetrack_session",
                            "description": "The dashboard's session (`__Host-jetrack_session` behind https)"}
            },
            "schemas": {
                "TimeZone": {
                    "type": "string",
                    "description": "An IANA time zone of the embedded database, such as Europe/Berlin",
                    "enum": time_zones(),
                },
                "Error": {
                    "type": "object",
                    "required": ["success", "data", "meta"],
                    "properties": {
                        "success": {"const": false},
                        "data": {"type": "null"},
                        "meta": {
                            "type": "object",
                            "required": ["status", "message", "errors"],
                            "properties": {
                                "status": {"type": "integer"},
                                "message": {"type": "string"},
                                "errors": {"type": "array", "items": {"type": "string"}}
                            }
                        }
                    }
                }
            }
        }
    })
}

/// JSON schemas of bodies and of `data`, one function each.
pub mod schema {
    use serde_json::{Value, json};

    fn ts() -> Value {
        json!({"type": "string", "format": "date-time"})
    }

    fn ts_or_null() -> Value {
        json!({"type": ["string", "null"], "format": "date-time"})
    }

    fn str_or_null() -> Value {
        json!({"type": ["string", "null"]})
    }

    fn int_or_null() -> Value {
        json!({"type": ["integer", "null"]})
    }

    /// A person's or a key's name: no control characters (the server trims spaces and treats
    /// an empty name as none).
    fn person_name() -> Value {
        json!({"type": ["string", "null"], "maxLength": 100, "pattern": NO_CONTROLS})
    }

    /// No control characters (Unicode category Cc).
    const NO_CONTROLS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
    /// At least one character other than white space, and no control characters.
    const VISIBLE: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";
    /// What `domain` takes: `localhost`, an IPv4 literal, or a host name with a dot whose last
    /// label starts with a letter (a leading `www.` is dropped, so `www.` + one label is not
    /// one). The server also takes a pasted `https://…/`, IPv6 literals in brackets and
    /// Unicode names (stored in their ASCII form).
    const DOMAIN: &str = "^(localhost|((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])|(?![Ww][Ww][Ww]\\.[^.]+$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)$";
    /// An absolute http(s) URL without white space, or empty (no picture).
    const PICTURE: &str = "^([Hh][Tt][Tt][Pp][Ss]?://[^\\s\\u0000-\\u001F\\u007F-\\u009F]+)?$";

    fn obj(props: Value) -> Value {
        let required: Vec<String> = props
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        json!({"type": "object", "required": required, "properties": props})
    }

    fn list(item: Value) -> Value {
        json!({"type": "array", "items": item})
    }

    pub fn object() -> Value {
        json!({"type": "object"})
    }

    pub fn setup_needed() -> Value {
        obj(json!({"needed": {"type": "boolean"}}))
    }

    pub fn account() -> Value {
        obj(json!({
            "id": {"type": "string", "format": "uuid"},
            "email": {"type": "string"},
            "firstName": str_or_null(),
            "lastName": str_or_null(),
            "picture": str_or_null(),
            "emailVerifiedAt": ts_or_null(),
            "createdAt": ts(),
        }))
    }

    pub fn session() -> Value {
        obj(json!({"account": account(), "csrfToken": {"type": "string"}}))
    }

    pub fn logged_out() -> Value {
        obj(json!({"loggedOut": {"const": true}}))
    }

    pub fn setup_body() -> Value {
        json!({"type": "object", "required": ["token", "email", "password"], "properties": {
            "token": {"type": "string"}, "email": {"type": "string", "format": "email"},
            "password": {"type": "string", "minLength": 10},
            "firstName": {"type": "string", "maxLength": 100, "pattern": NO_CONTROLS},
            "lastName": {"type": "string", "maxLength": 100, "pattern": NO_CONTROLS}
        }, "additionalProperties": false})
    }

    pub fn login_body() -> Value {
        json!({"type": "object", "required": ["email", "password"], "properties": {
            "email": {"type": "string"}, "password": {"type": "string"}
        }, "additionalProperties": false})
    }

    pub fn account_patch() -> Value {
        json!({"type": "object", "properties": {
            "firstName": person_name(),
            "lastName": person_name(),
            "picture": {"type": ["string", "null"], "maxLength": 2000, "pattern": PICTURE,
                        "description": "An http(s) URL"}
        }, "additionalProperties": false})
    }

    pub fn password_body() -> Value {
        json!({"type": "object", "required": ["currentPassword", "newPassword"], "properties": {
            "currentPassword": {"type": "string"},
            "newPassword": {"type": "string", "minLength": 10, "maxLength": 1024}
        }, "additionalProperties": false})
    }

    pub fn password_changed() -> Value {
        obj(json!({"passwordChanged": {"const": true}, "otherSessionsEnded": {"type": "integer"}}))
    }

    fn limits() -> Value {
        obj(json!({"pageviewsPerMonth": int_or_null(), "websites": int_or_null()}))
    }

    pub fn subscription() -> Value {
        obj(json!({
            "plan": {"const": "self-hosted"}, "status": {"const": "active"},
            "currentPeriodStart": ts(), "currentPeriodEnd": ts(), "limits": limits()
        }))
    }

    pub fn usage() -> Value {
        obj(json!({
            "currentPeriod": obj(json!({"start": ts(), "end": ts()})),
            "pageviews": obj(json!({"used": {"type": "integer"}, "limit": int_or_null(),
                                    "percentage": {"type": ["number", "null"]}})),
            "websites": obj(json!({"used": {"type": "integer"}, "limit": int_or_null()}))
        }))
    }

    fn key_fields() -> Value {
        json!({
            "id": {"type": "string", "format": "uuid"},
            "name": str_or_null(),
            "prefix": {"type": "string", "minLength": 12, "maxLength": 12},
            "scope": {"enum": ["full", "read"]},
            "createdAt": ts(), "lastUsedAt": ts_or_null(), "expiresAt": ts_or_null()
        })
    }

    pub fn key() -> Value {
        obj(key_fields())
    }

    pub fn key_list() -> Value {
        list(key())
    }

    pub fn new_key() -> Value {
        let mut fields = key_fields();
        fields["key"] = json!({"type": "string", "pattern": "^bj_live_[0-9a-f]{64}$"});
        obj(fields)
    }

    pub fn key_body() -> Value {
        json!({"type": "object", "properties": {
            "name": person_name(),
            "scope": {"enum": ["full", "read"], "default": "full"},
            "expiresInDays": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650}
        }, "additionalProperties": false})
    }

    pub fn revoked() -> Value {
        obj(json!({"id": {"type": "string"}, "revoked": {"const": true}}))
    }

    pub fn audit_list() -> Value {
        list(obj(json!({
            "at": ts(),
            "action": {"enum": ["login", "login_failed", "logout", "password_changed", "key_created",
                                "key_regenerated", "key_revoked", "website_created", "website_deleted"]},
            "ip": str_or_null(),
            "detail": str_or_null()
        })))
    }

    pub fn website() -> Value {
        obj(json!({
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "domain": {"type": "string"},
            "timezone": {"type": "string"},
            "cookieMode": {"type": "boolean"},
            "retentionDays": int_or_null(),
            "createdAt": ts(),
            "trackingSnippet": {"type": "string"}
        }))
    }

    pub fn website_list() -> Value {
        list(website())
    }

    fn website_fields() -> Value {
        json!({
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": VISIBLE},
            "domain": {"type": "string", "maxLength": 253, "pattern": DOMAIN,
                       "description": "A host name, IP literal or localhost; https://www.Example.com/ becomes example.com"},
            "timezone": {"$ref": "#/components/schemas/TimeZone", "default": "UTC"},
            "cookieMode": {"type": "boolean", "default": false},
            "retentionDays": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650}
        })
    }

    pub fn website_create() -> Value {
        json!({"type": "object", "required": ["name", "domain"], "properties": website_fields(),
               "additionalProperties": false})
    }

    pub fn website_patch() -> Value {
        json!({"type": "object", "properties": website_fields(), "additionalProperties": false})
    }

    pub fn deleted() -> Value {
        obj(json!({"id": {"type": "string"}, "deleted": {"const": true}}))
    }

    pub fn events_body() -> Value {
        let text = |max: u32| json!({"type": ["string", "null"], "maxLength": max});
        let event = json!({
            "type": "object",
            "required": ["type", "url", "timestamp"],
            "properties": {
                "type": {"enum": ["pageview", "event", "heartbeat"]},
                "url": {"type": "string", "format": "uri", "maxLength": 2000, "description": "An absolute http(s) URL on the website's domain or a subdomain"},
                "timestamp": {"type": "string", "format": "date-time", "description": "ISO-8601, at most 5 minutes in the future"},
                "visitorId": {"type": ["string", "null"], "minLength": 1, "maxLength": 200, "description": "Any stable string naming the visitor; required unless ip and userAgent are given"},
                "ip": {"type": ["string", "null"], "description": "The visitor's address, for the visitor id and the country; never stored"},
                "userAgent": {"type": ["string", "null"], "description": "For the visitor id, bot filtering, browser, OS and device; never stored"},
                "referrer": {"type": ["string", "null"]},
                "screenWidth": {"type": ["integer", "null"]},
                "language": text(35),
                "name": {"type": ["string", "null"], "maxLength": 120, "description": "Required for type event"},
                "props": {"type": ["object", "null"], "maxProperties": 30,
                          "additionalProperties": {"type": ["string", "number", "boolean"]}},
                "hostname": text(100),
                "country": {"type": ["string", "null"], "description": "ISO 3166-1 alpha-2"},
                "browser": text(100),
                "os": text(100),
                "device": {"enum": ["desktop", "mobile", "tablet", null]},
                "screen": {"enum": ["xs", "sm", "md", "lg", "xl", null]}
            }
        });
        // Each event is checked on its own: an invalid one is listed in `dropped` and the
        // request still succeeds, so the request's schema holds only what refuses it whole;
        // an event's fields are described beside it.
        json!({"type": "object", "required": ["events"], "additionalProperties": false,
               "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 1000,
                   "items": {"type": "object", "x-jetrack-event": event,
                             "description": "An event; `x-jetrack-event` describes its fields. One that breaks those rules is not stored and is listed in `dropped` with its index and the reason."}}}})
    }

    fn num() -> Value {
        json!({"type": "number"})
    }

    fn int() -> Value {
        json!({"type": "integer"})
    }

    fn main_fields() -> Value {
        json!({
            "uniqueVisitors": int(), "totalPageviews": int(), "totalSessions": int(),
            "bounceRate": num(), "avgSessionDuration": num(), "viewsPerSession": num()
        })
    }

    pub fn stats_main() -> Value {
        let mut s = obj(main_fields());
        s["properties"]["previous"] = obj(main_fields());
        s
    }

    pub fn stats_series() -> Value {
        list(obj(json!({
            "date": {"type": "string"}, "uniqueVisitors": int(), "totalPageviews": int(),
            "totalSessions": int(), "bounceRate": num(), "avgSessionDuration": num()
        })))
    }

    pub fn stats_pages() -> Value {
        list(obj(json!({
            "value": str_or_null(), "uniqueVisitors": int(), "totalPageviews": int(), "percentage": num()
        })))
    }

    pub fn stats_sessions() -> Value {
        list(obj(json!({
            "value": str_or_null(), "uniqueVisitors": int(), "totalSessions": int(),
            "bounceRate": num(), "percentage": num()
        })))
    }

    pub fn stats_events() -> Value {
        list(obj(json!({
            "value": str_or_null(), "totalEvents": int(), "uniqueVisitors": int(), "percentage": num()
        })))
    }

    pub fn stats_realtime() -> Value {
        obj(json!({
            "activeVisitors": int(),
            "pages": list(obj(json!({"value": {"type": "string"}, "activeVisitors": int()})))
        }))
    }

    pub fn stats_active() -> Value {
        obj(
            json!({"date": {"type": "string", "format": "date"}, "dau": int(), "wau": int(), "mau": int()}),
        )
    }

    pub fn events_answer() -> Value {
        obj(json!({
            "accepted": {"type": "integer", "description": "Events stored"},
            "dropped": list(obj(json!({
                "index": {"type": "integer", "description": "Position in the request's events"},
                "reason": {"type": "string", "description": "bot, hostname, spam, quota, or what is wrong with the event"}
            })))
        }))
    }
}
