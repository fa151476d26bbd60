//! A tiny JSON-over-HTTP client for tests: every call returns `(status, body)`, with the body
//! parsed as JSON (`Value::Null` when empty or not JSON). Transport errors panic: in a test
//! they are the failure.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    pub fn new(base: &str, key: Option<&str>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            key: key.map(str::to_owned),
        }
    }

    /// The same client with another bearer token (`None` = no Authorization header).
    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self {
            key: key.map(str::to_owned),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let bytes = body.map(|b| (b.to_string().into_bytes(), "application/json"));
        self.send_raw(
            method,
            path,
            bytes.as_ref().map(|(b, ct)| (b.as_slice(), *ct)),
        )
        .await
    }

    /// Sends raw bytes with an explicit content type (CSV, NDJSON, malformed JSON...).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&[u8], &str)>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some((bytes, content_type)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes.to_vec());
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Waits for a task to finish (30 s at most) and returns it.
    pub async fn wait_task(&self, uid: u64) -> Value {
        poll_task(self, uid, Duration::from_secs(30)).await
    }
}

/// Polls `GET {url}/tasks/{uid}` with bearer `key` (empty: no header) until the task is
/// finished, and returns it; panics after 30 s.
pub async fn wait_task(url: &str, key: &str, uid: u64) -> Value {
    wait_task_timeout(url, key, uid, Duration::from_secs(30)).await
}

/// `wait_task` with an explicit timeout.
pub async fn wait_task_timeout(url: &str, key: &str, uid: u64, timeout: Duration) -> Value {
    let key = Some(key).filter(|k| !k.is_empty());
    poll_task(&Client::new(url, key), uid, timeout).await
}

async fn poll_task(client: &Client, uid: u64, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, task) = client.get(&format!("/tasks/{uid}")).await;
        let finished = matches!(
            task["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        );
        if status == 200 && finished {
            return task;
        }
        if Instant::now() > deadline {
            panic!("task {uid} not finished after {timeout:?}: {status} {task}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
