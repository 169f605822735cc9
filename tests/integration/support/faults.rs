//! A proxy in front of moto's EventBridge that refuses every outcome once: the first
//! `PutEvents` entry carrying an `outcomeId` is answered `InternalFailure` (a partial
//! failure, `FailedEntryCount` > 0), the others go through to moto. HTTP/1.1, one request a
//! connection (`Connection: close`), which is all the SDK needs of it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct FailOnce {
    pub endpoint: String,
    /// The outcome ids refused once, in order.
    refused: Arc<Mutex<Vec<String>>>,
}

impl FailOnce {
    pub async fn start(moto: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let upstream = moto.trim_start_matches("http://").to_owned();
        let refused = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let state = (Arc::clone(&refused), seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (refused, seen) = (Arc::clone(&state.0), Arc::clone(&state.1));
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &upstream, &refused, &seen).await;
                });
            }
        });
        Self { endpoint, refused }
    }

    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

/// One request: headers, then `Content-Length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Ok((head, body))
}

/// Sends `head` (its own Content-Length and Connection replaced) and `body` to moto; its
/// answer's body.
async fn forward(upstream: &str, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut lines: Vec<&str> = head
        .lines()
        .filter(|line| {
            let name = line
                .split(':')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            name != "content-length" && name != "connection"
        })
        .collect();
    let length = format!("Content-Length: {}", body.len());
    lines.push(&length);
    lines.push("Connection: close");
    let mut stream = TcpStream::connect(upstream).await?;
    stream
        .write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())
        .await?;
    stream.write_all(body).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let start = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |end| end + 4);
    Ok(answer[start..].to_vec())
}

async fn serve(
    mut stream: TcpStream,
    upstream: &str,
    refused: &Mutex<Vec<String>>,
    seen: &Mutex<HashSet<String>>,
) -> std::io::Result<()> {
    let (head, body) = read_request(&mut stream).await?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    // Which entries are refused this time: an outcome seen for the first time.
    let fails: Vec<bool> = entries
        .iter()
        .map(|entry| {
            let detail: Value = serde_json::from_str(entry["Detail"].as_str().unwrap_or("null"))
                .unwrap_or(Value::Null);
            let id = detail["outcomeId"].as_str().unwrap_or_default().to_owned();
            let first = seen.lock().unwrap().insert(id.clone());
            if first {
                refused.lock().unwrap().push(id);
            }
            first
        })
        .collect();
    let passing: Vec<Value> = entries
        .iter()
        .zip(&fails)
        .filter(|(_, fail)| !**fail)
        .map(|(entry, _)| entry.clone())
        .collect();
    let mut answered: Vec<Value> = if passing.is_empty() {
        Vec::new()
    } else {
        let forwarded = json!({ "Entries": passing }).to_string();
        let answer = forward(upstream, &head, forwarded.as_bytes()).await?;
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        answer["Entries"].as_array().cloned().unwrap_or_default()
    };
    answered.reverse();
    let mut failed = 0;
    let merged: Vec<Value> = fails
        .iter()
        .map(|fail| {
            if *fail {
                failed += 1;
                json!({"ErrorCode": "InternalFailure", "ErrorMessage": "injected: refused once"})
            } else {
                answered
                    .pop()
                    .unwrap_or(json!({"ErrorCode": "InternalFailure"}))
            }
        })
        .collect();
    let body = json!({ "FailedEntryCount": failed, "Entries": merged }).to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
