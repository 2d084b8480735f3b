//! The console in a real browser (Debian's headless Chromium, driven over the DevTools
//! protocol): it lists the fleet's three clusters and shows a new revision without a reload.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use proto::Readiness;
use serde_json::{Value, json};
use support::{Pki, SimAgent, TempDir, kustomization};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

/// A headless Chromium and a DevTools connection to its one page.
struct Browser {
    child: tokio::process::Child,
    page: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    next_id: u64,
    _profile: TempDir,
}

impl Browser {
    async fn launch() -> Browser {
        let binary = std::env::var("FLOTILLA_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = TempDir::new("chromium");
        let mut child = tokio::process::Command::new(&binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--ignore-certificate-errors",
            ])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} (install Debian's chromium package): {e}")
            });
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let browser_url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_string();
                }
            }
            panic!("chromium exited without a DevTools endpoint");
        })
        .await
        .expect("chromium starts");
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let host = browser_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host")
            .to_string();
        let targets: Vec<Value> = reqwest::get(format!("http://{host}/json/list"))
            .await
            .expect("targets")
            .json()
            .await
            .expect("json");
        let page_url = targets
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let tcp = tokio::net::TcpStream::connect(&host)
            .await
            .expect("devtools tcp");
        let (page, _) = tokio_tungstenite::client_async(page_url.as_str(), tcp)
            .await
            .expect("devtools websocket");
        Browser {
            child,
            page,
            next_id: 1,
            _profile: profile,
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "id": id, "method": method, "params": params }).to_string();
        self.page.send(Message::text(request)).await.expect("send");
        while let Some(message) = self.page.next().await {
            let Ok(Message::Text(text)) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).expect("json");
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
        panic!("devtools connection closed");
    }

    /// Waits, inside the page, until `condition` (a JS expression) holds: a MutationObserver
    /// re-checks it on every DOM change, so the wait ends on the change itself.
    async fn wait_until(&mut self, condition: &str) {
        let expression = format!(
            "new Promise(resolve => {{ const check = () => {{ if ({condition}) {{ observer.disconnect(); resolve(true); }} }}; \
             const observer = new MutationObserver(check); \
             observer.observe(document, {{ subtree: true, childList: true, attributes: true, characterData: true }}); check(); }})"
        );
        let call = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        );
        let result = tokio::time::timeout(Duration::from_secs(30), call).await;
        assert!(result.is_ok(), "the page never showed: {condition}");
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        result["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[actix_web::test]
async fn the_console_lists_the_clusters_and_shows_a_new_revision_without_reload() {
    let mut pki = Pki::new("console");
    let mut agents = vec![];
    let fleet = {
        let mut certs = vec![];
        for name in ["staging", "production", "production-clone"] {
            certs.push(pki.add_cluster(name).await);
        }
        let fleet = pki.start_fleet().await;
        for cert in &certs {
            let objects = vec![kustomization("apps", "main@sha1:aaaa", Readiness::True)];
            agents.push(SimAgent::start(
                pki.link_config(&fleet.agent_url(), cert),
                objects,
            ));
        }
        fleet
    };
    for agent in &mut agents {
        agent.wait(|s| s.connected).await;
    }

    let mut browser = Browser::launch().await;
    let url = format!("{}/#token={}", fleet.api_url(), pki.token);
    browser.call("Page.navigate", json!({ "url": url })).await;
    browser
        .wait_until("document.querySelectorAll('#clusters li[data-state=Connected]').length === 3")
        .await;
    let names = browser.eval("[...document.querySelectorAll('#clusters li')].map(li => li.dataset.cluster).join(',')").await;
    assert_eq!(names, "production,production-clone,staging");
    browser
        .wait_until(
            r#"document.querySelectorAll('td[data-revision="main@sha1:aaaa"]').length === 3"#,
        )
        .await;

    // A marker on the window survives only if the page is never reloaded.
    browser.eval("window.flotillaMarker = 'still here'").await;
    agents[0]
        .link
        .do_send(agent::fleet_link::StatusChanged(kustomization(
            "apps",
            "main@sha1:bbbb",
            Readiness::True,
        )));
    browser
        .wait_until(r#"document.querySelector('td[data-cluster="staging"][data-object="flux-system/apps"]')?.dataset.revision === "main@sha1:bbbb""#)
        .await;
    assert_eq!(browser.eval("window.flotillaMarker").await, "still here");
    let production = browser.eval(r#"document.querySelector('td[data-cluster="production"][data-object="flux-system/apps"]').dataset.revision"#).await;
    assert_eq!(production, "main@sha1:aaaa");

    drop(browser);
    fleet.stop().await;
    support::assert_no_secret_logged(&pki.secrets);
}
