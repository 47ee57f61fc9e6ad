//! Request routing: one function from a request and the shared state to a response, so every route can
//! be exercised with `rouille::Request::fake_http` as well as over real HTTP.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rouille::{Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api::{self, percent_decode};
use super::auth::{self, CSRF_HEADER, CSRF_VALUE};
use super::State;
use crate::protocol::QoS;
use crate::topic::validate_topic_name;

const INDEX_HTML: &str = include_str!("../../admin/index.html");
const APP_JS: &str = include_str!("../../admin/app.js");
const STYLE_CSS: &str = include_str!("../../admin/style.css");

/// Long polls of /api/events held at once; beyond this a poll gets 503, so they never take every
/// thread of the pool.
pub const MAX_EVENT_POLLS: usize = 4;
/// The longest a poll of /api/events waits for a new event.
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(25);
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Events returned by one poll at most.
const MAX_EVENTS_PER_POLL: usize = 1000;

pub fn handle(req: &Request, st: &State) -> Response {
    let path = req.url();
    let method = req.method();
    let resp = if let Some(rest) = path.strip_prefix("/api/") {
        api_route(req, st, method, rest)
            .unwrap_or_else(|(code, msg)| error(code, msg))
            .with_no_cache()
    } else {
        static_file(method, &path)
    };
    resp.with_additional_header("X-Content-Type-Options", "nosniff")
        .with_additional_header("X-Frame-Options", "DENY")
        .with_additional_header(
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'",
        )
}

type Result<T> = std::result::Result<T, (u16, String)>;

fn error(code: u16, msg: impl Into<String>) -> Response {
    Response::json(&api::Error { error: msg.into() }).with_status_code(code)
}

fn err<T>(code: u16, msg: impl Into<String>) -> Result<T> {
    Err((code, msg.into()))
}

fn json<T: Serialize>(v: &T) -> Result<Response> {
    Ok(Response::json(v))
}

fn static_file(method: &str, path: &str) -> Response {
    if method != "GET" && method != "HEAD" {
        return error(405, format!("{method} is not allowed on {path}"))
            .with_additional_header("Allow", "GET");
    }
    let (ctype, body) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "/style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        _ => return error(404, format!("no page {path}")),
    };
    Response::from_data(ctype, body.as_bytes()).with_no_cache()
}

/// The user a request is logged in as: session cookie, else HTTP Basic.
fn user_of(req: &Request, st: &State) -> Option<String> {
    if let Some(token) = req
        .header("Cookie")
        .and_then(|c| auth::cookie_value(c, auth::COOKIE))
    {
        if let Some(u) = st.accounts.session_user(token) {
            return Some(u);
        }
    }
    req.header("Authorization")
        .and_then(|h| st.accounts.basic_user(h))
}

fn method_check(method: &str, allowed: &[&str], path: &str) -> Result<()> {
    if allowed.contains(&method) {
        Ok(())
    } else {
        err(
            405,
            format!(
                "{method} is not allowed on /api/{path}; use {}",
                allowed.join(" or ")
            ),
        )
    }
}

fn api_route(req: &Request, st: &State, method: &str, path: &str) -> Result<Response> {
    // Cross-site request forgery: a state-changing request must carry the custom header.
    if method != "GET" && method != "HEAD" && req.header(CSRF_HEADER) != Some(CSRF_VALUE) {
        return err(
            403,
            format!("requests that change state need the header `{CSRF_HEADER}: {CSRF_VALUE}`"),
        );
    }
    if path == "login" {
        method_check(method, &["POST"], path)?;
        return login(req, st);
    }
    let Some(user) = user_of(req, st) else {
        return err(401, "log in first (POST /api/login, or HTTP Basic)");
    };
    let (head, tail) = match path.split_once('/') {
        Some((h, t)) => (h, Some(t)),
        None => (path, None),
    };
    match (head, tail) {
        ("logout", None) => {
            method_check(method, &["POST"], path)?;
            if let Some(token) = req
                .header("Cookie")
                .and_then(|c| auth::cookie_value(c, auth::COOKIE))
            {
                st.accounts.logout(token);
            }
            Ok(Response::json(&serde_json::json!({ "logged_out": true }))
                .with_additional_header("Set-Cookie", auth::clear_cookie()))
        }
        ("session", None) => {
            method_check(method, &["GET"], path)?;
            json(&serde_json::json!({ "username": user }))
        }
        ("clients", None) => {
            method_check(method, &["GET"], path)?;
            clients(req, st)
        }
        ("clients", Some(id)) if !id.is_empty() => {
            method_check(method, &["DELETE"], path)?;
            let discard = match query(req, "discard_session")?.as_deref() {
                None | Some("false") | Some("0") => false,
                Some("true") | Some("1") => true,
                Some(v) => {
                    return err(
                        400,
                        format!("discard_session must be true or false, not `{v}`"),
                    )
                }
            };
            if !st.handle.disconnect(id, discard) {
                return err(404, format!("no client or session `{id}`"));
            }
            json(
                &serde_json::json!({ "client_id": id, "disconnected": true, "discard_session": discard }),
            )
        }
        ("topics", None) => topics(req, st, method),
        ("history", None) => {
            method_check(method, &["GET"], path)?;
            let topic = required_query(req, "topic")?;
            validate_topic_name(&topic)
                .map_err(|e| (400, format!("`{topic}` is not a valid topic name: {e}")))?;
            let values = st
                .handle
                .history(&topic)
                .iter()
                .map(|h| api::Value::from(&*h.msg))
                .collect();
            json(&api::History { topic, values })
        }
        ("recent", None) => {
            method_check(method, &["GET"], path)?;
            let recent: Vec<api::Recent> =
                st.handle.recent().iter().map(api::Recent::from).collect();
            json(&recent)
        }
        ("publish", None) => {
            method_check(method, &["POST"], path)?;
            publish(req, st)
        }
        ("users", None) => users(req, st, method),
        ("users", Some(name)) if !name.is_empty() => {
            method_check(method, &["DELETE"], path)?;
            match st.handle.delete_user(name) {
                Ok(true) => json(&serde_json::json!({ "username": name, "deleted": true })),
                Ok(false) => err(404, format!("no account `{name}`")),
                Err(e) => err(409, e),
            }
        }
        ("stats", None) => {
            method_check(method, &["GET"], path)?;
            json(&st.stats())
        }
        ("events", None) => {
            method_check(method, &["GET"], path)?;
            events(req, st)
        }
        _ => err(404, format!("no endpoint /api/{path}")),
    }
}

fn login(req: &Request, st: &State) -> Result<Response> {
    let body: api::LoginRequest = body_json(req, 64 * 1024)?;
    if !st.accounts.check(&body.username, &body.password) {
        log::warn!("admin login refused for `{}`", body.username);
        return err(401, "wrong user name or password");
    }
    let token = st
        .accounts
        .login(&body.username)
        .map_err(|e| (500, e.to_string()))?;
    log::info!("admin `{}` logged in", body.username);
    Ok(
        Response::json(&serde_json::json!({ "username": body.username }))
            .with_additional_header("Set-Cookie", auth::set_cookie(&token)),
    )
}

fn clients(req: &Request, st: &State) -> Result<Response> {
    let filter = query(req, "filter")?.unwrap_or_default().to_lowercase();
    let offset = number(req, "offset", 0, usize::MAX)?;
    let limit = number(req, "limit", DEFAULT_PAGE, MAX_PAGE)?;
    let all = st.handle.clients();
    let matching: Vec<_> = all
        .iter()
        .filter(|c| {
            filter.is_empty()
                || c.client_id.to_lowercase().contains(&filter)
                || c.username
                    .as_deref()
                    .is_some_and(|u| u.to_lowercase().contains(&filter))
        })
        .collect();
    json(&api::ClientPage {
        total: matching.len(),
        offset,
        clients: matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|c| api::Client::from(*c))
            .collect(),
    })
}

fn topics(req: &Request, st: &State, method: &str) -> Result<Response> {
    match method {
        "GET" => json(&api::Topics {
            enforced: st.handle.settings().enforce_topics,
            topics: st.handle.topics().iter().map(api::Topic::from).collect(),
        }),
        "POST" => {
            let body: api::TopicRequest = body_json(req, 64 * 1024)?;
            match st.handle.create_topic(&body.topic) {
                Ok(true) => Ok(Response::json(
                    &serde_json::json!({ "topic": body.topic, "created": true }),
                )
                .with_status_code(201)),
                Ok(false) => err(409, format!("`{}` is already listed", body.topic)),
                Err(e) => err(400, e),
            }
        }
        "DELETE" => {
            let topic = required_query(req, "topic")?;
            match st.handle.delete_topic(&topic) {
                Ok(true) => json(&serde_json::json!({ "topic": topic, "deleted": true })),
                Ok(false) => err(404, format!("`{topic}` is not in the topic list")),
                Err(e) => err(400, e),
            }
        }
        _ => err(
            405,
            format!("{method} is not allowed on /api/topics; use GET, POST or DELETE"),
        ),
    }
}

fn publish(req: &Request, st: &State) -> Result<Response> {
    let max = st.handle.settings().limits.max_packet_size;
    // JSON may escape each byte into up to 6 characters.
    let body: api::PublishRequest = body_json(req, max.saturating_mul(6) + 64 * 1024)?;
    if body.payload.len() > max {
        return err(
            413,
            format!("the payload is larger than max_packet_size ({max})"),
        );
    }
    let qos =
        QoS::from_u8(body.qos).ok_or((400, format!("qos must be 0, 1 or 2, not {}", body.qos)))?;
    st.handle
        .publish(&body.topic, body.payload.into_bytes(), qos, body.retain)
        .map_err(|e| (400, e))?;
    json(&serde_json::json!({ "topic": body.topic, "published": true }))
}

fn users(req: &Request, st: &State, method: &str) -> Result<Response> {
    match method {
        "GET" => {
            let users: Vec<_> = st
                .handle
                .user_names()
                .into_iter()
                .map(|u| serde_json::json!({ "username": u }))
                .collect();
            json(&serde_json::json!({
                "users": users,
                "editable": st.handle.settings().password_file.is_some(),
            }))
        }
        "POST" => {
            let body: api::UserRequest = body_json(req, 64 * 1024)?;
            match st.handle.set_user(&body.username, &body.password) {
                Ok(created) => Ok(Response::json(
                    &serde_json::json!({ "username": body.username, "created": created }),
                )
                .with_status_code(if created { 201 } else { 200 })),
                Err(e) => err(400, e),
            }
        }
        _ => err(
            405,
            format!("{method} is not allowed on /api/users; use GET or POST"),
        ),
    }
}

/// Long polling: the kept events after `since`; if there are none, waits up to `wait` seconds for the
/// next one.
fn events(req: &Request, st: &State) -> Result<Response> {
    let since = number(req, "since", 0, usize::MAX)? as u64;
    let wait =
        Duration::from_secs(number(req, "wait", 0, MAX_POLL_WAIT.as_secs() as usize)? as u64);
    let _slot = if wait.is_zero() {
        None
    } else {
        Some(PollSlot::take(st).ok_or((
            503,
            format!("too many event polls at once (at most {MAX_EVENT_POLLS}); retry"),
        ))?)
    };
    let Some(watch) = st.handle.watch_events(since) else {
        return err(503, "the broker is stopping");
    };
    let mut out = watch.backlog;
    if out.is_empty() && !wait.is_zero() {
        let deadline = Instant::now() + wait;
        crossbeam_channel::select! {
            recv(watch.live) -> ev => if let Ok(ev) = ev { out.push(ev) },
            recv(st.stop) -> _ => {},
            default(deadline.saturating_duration_since(Instant::now())) => {},
        }
        while out.len() < MAX_EVENTS_PER_POLL {
            match watch.live.try_recv() {
                Ok(ev) => out.push(ev),
                Err(_) => break,
            }
        }
    }
    if out.len() > MAX_EVENTS_PER_POLL {
        out.drain(..out.len() - MAX_EVENTS_PER_POLL);
    }
    json(&api::Events {
        last_seq: out.last().map_or(since, |e| e.seq),
        events: out.iter().map(|e| api::EventJson::from(&**e)).collect(),
    })
}

struct PollSlot<'a>(&'a State);

impl<'a> PollSlot<'a> {
    fn take(st: &'a State) -> Option<PollSlot<'a>> {
        st.polls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_EVENT_POLLS).then_some(n + 1)
            })
            .ok()
            .map(|_| PollSlot(st))
    }
}

impl Drop for PollSlot<'_> {
    fn drop(&mut self) {
        self.0.polls.fetch_sub(1, Ordering::SeqCst);
    }
}

// ----- input ---------------------------------------------------------------------------------------

/// A query parameter, percent-decoded; 400 if it is malformed.
fn query(req: &Request, name: &str) -> Result<Option<String>> {
    for pair in req.raw_query_string().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            return percent_decode(v, true).map(Some).ok_or((
                400,
                format!("query parameter `{name}` is not valid percent-encoded UTF-8"),
            ));
        }
    }
    Ok(None)
}

fn required_query(req: &Request, name: &str) -> Result<String> {
    match query(req, name)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => err(400, format!("the query parameter `{name}` is required")),
    }
}

fn number(req: &Request, name: &str, default: usize, max: usize) -> Result<usize> {
    match query(req, name)? {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => err(
                400,
                format!("`{name}` must be a number from 0 to {max}, not `{v}`"),
            ),
        },
    }
}

fn body_json<T: DeserializeOwned>(req: &Request, limit: usize) -> Result<T> {
    let Some(data) = req.data() else {
        return err(400, "the request body was already read");
    };
    let mut buf = Vec::new();
    data.take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| (400, format!("cannot read the body: {e}")))?;
    if buf.len() > limit {
        return err(413, format!("the body is larger than {limit} bytes"));
    }
    serde_json::from_slice(&buf).map_err(|e| (400, format!("malformed JSON: {e}")))
}
