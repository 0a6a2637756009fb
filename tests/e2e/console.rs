//! The web console in a real browser: headless Chromium driven over WebDriver (chromedriver +
//! fantoccini) against the demo world. The page shows both regions and every AZ, and the DNS
//! answer per client location and for a typed subnet; an instance
//! stopped through the admin API turns red (down, with its reason) within the health budget;
//! draining an AZ from the page with the token changes the AZ shares on the page and in
//! `/status`; a wrong token is refused with a visible message; no JavaScript errors are logged.
//! Screenshots (1280x800 light and dark, phone width) are written under
//! `target/tmp/console-*.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test installs them when missing);
//! set `CHROMEDRIVER` / `CHROMIUM` to use other binaries.

use crate::harness::{addr, demo_config, http, poll_until, Node, TempDir};
use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AUTH: &str = "Authorization: Bearer demo-admin-token";
/// How long a health change may take to show: fall (2) x interval (500 ms) + timeout (300 ms),
/// plus the page's refresh (2 s at worst) and slack for a loaded machine.
const HEALTH_BUDGET: Duration = Duration::from_secs(6);

fn which(env: &str, candidates: &[&str]) -> String {
    if let Ok(p) = std::env::var(env) {
        return p;
    }
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
        .unwrap_or_else(|| {
            panic!(
                "{} not found: install Debian's chromium and chromium-driver (scripts/test does) or set {env}",
                candidates[0]
            )
        })
}

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let bin = which(
            "CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let d = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // it answers HTTP once it accepts connections (it keeps them open: no read-to-end here)
        poll_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect_timeout(&status, Duration::from_millis(200)).is_ok()
        })
        .expect("chromedriver never answered");
        d
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST /session/{id}/se/log` (chromedriver): the browser's console log since the last call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (
            hyper::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let chromium = which(
        "CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("WebDriver session")
}

/// Waits (bounded) for `css` and returns it.
async fn find(c: &Client, css: &str, within: Duration) -> Element {
    c.wait()
        .at_most(within)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

/// Polls an attribute of `css` until `ok` holds (bounded); returns the last value.
async fn wait_attr(
    c: &Client,
    css: &str,
    attr: &str,
    within: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            let v = if attr == "text" {
                el.text().await.ok()
            } else {
                el.attr(attr).await.ok().flatten()
            };
            if let Some(v) = v {
                if ok(&v) {
                    return v;
                }
                last = v;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} [{attr}] never matched within {within:?}; last {last:?}");
}

/// Clicks an admin button on the page and confirms it in the page's dialog.
async fn click_and_confirm(c: &Client, css: &str) {
    find(c, css, Duration::from_secs(5))
        .await
        .click()
        .await
        .unwrap();
    find(c, "#confirm-ok", Duration::from_secs(5))
        .await
        .click()
        .await
        .unwrap();
}

async fn set_token(c: &Client, token: &str) {
    let input = find(c, "#token", Duration::from_secs(5)).await;
    input.clear().await.unwrap();
    input.send_keys(token).await.unwrap();
    find(c, "#token-save", Duration::from_secs(5))
        .await
        .click()
        .await
        .unwrap();
}

fn screenshot_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

#[test]
fn console_in_a_real_browser() {
    let dir = TempDir::new("console");
    let cfg = demo_config(&dir, 162);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(162, "0.1:9901");
    poll_until(Duration::from_secs(10), || {
        http(admin, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    })
    .expect("never ready");
    let driver = Driver::start();
    let profile = dir.0.join("chromium-profile");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver, &profile).await;
        let result = drive(&c, admin).await;
        let log = c.issue_cmd(BrowserLog).await;
        let _ = c.close().await;
        result.unwrap();
        // no JavaScript errors; the only expected error line is the refused action's 401
        let log = log.expect("browser log");
        let bad: Vec<&Value> = log
            .as_array()
            .expect("log entries")
            .iter()
            .filter(|e| matches!(e["level"].as_str(), Some("SEVERE" | "WARNING")))
            .filter(|e| {
                !e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("status of 401")
            })
            .collect();
        assert!(bad.is_empty(), "browser console: {bad:#?}");
    });
}

async fn drive(c: &Client, admin: std::net::SocketAddr) -> Result<(), String> {
    c.goto(&format!("http://{admin}/"))
        .await
        .map_err(|e| e.to_string())?;
    // both regions, every AZ
    for r in ["us-east", "eu-west"] {
        find(
            c,
            &format!("[data-kind=region][data-name={r}]"),
            Duration::from_secs(10),
        )
        .await;
    }
    for az in ["us-east-a", "us-east-b", "eu-west-a", "eu-west-b"] {
        find(
            c,
            &format!("[data-kind=az][data-name={az}]"),
            Duration::from_secs(5),
        )
        .await;
    }
    // DNS answers per client location, and for a typed subnet (the explain endpoint's data)
    wait_attr(
        c,
        "[data-location='GB client'] .dns-region",
        "text",
        Duration::from_secs(10),
        |t| t == "eu-west",
    )
    .await;
    wait_attr(
        c,
        "[data-location='US client'] .dns-region",
        "text",
        Duration::from_secs(1),
        |t| t == "us-east",
    )
    .await;
    let input = find(c, "#explain-input", Duration::from_secs(1)).await;
    input.send_keys("81.2.69.160/27").await.unwrap();
    find(c, "#explain-form button", Duration::from_secs(1))
        .await
        .click()
        .await
        .unwrap();
    let explained = wait_attr(
        c,
        "#explain-result .explained",
        "text",
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    assert!(
        explained.contains("eu-west") && explained.contains("127.162.2.1"),
        "{explained}"
    );
    // live updates are on (SSE)
    wait_attr(c, "#live", "data-mode", Duration::from_secs(5), |m| {
        m == "live"
    })
    .await;
    let shot = |name: &'static str| async move {
        let png = c.screenshot().await.expect("screenshot");
        let p = screenshot_dir().join(name);
        std::fs::write(&p, png).expect("write screenshot");
        eprintln!("screenshot: {}", p.display());
    };

    // an instance stopped through the admin API turns red, with its reason
    let r = http(
        admin,
        "POST",
        "/v1/demo/instances/user-us-east-a/stop",
        &[AUTH],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let css = "[data-kind=instance][data-name=user-us-east-a]";
    wait_attr(c, css, "data-state", HEALTH_BUDGET, |s| s == "down").await;
    let title = wait_attr(c, css, "title", Duration::from_secs(1), |_| true).await;
    assert!(title.contains("reason: "), "{title}");
    // the hover says when it was last checked, where its rise/fall counter stands and what
    // passive health saw (the demo's checks: rise 2, fall 2)
    assert!(
        title.contains("\nlast check: ") && title.contains(" s ago, failed"),
        "{title}"
    );
    assert!(title.contains("\nrise/fall: rise "), "{title}");
    assert!(title.contains("(rise 2, fall 2)"), "{title}");
    assert!(title.contains("\npassive: "), "{title}");
    let reason = find(c, &format!("{css} .reason"), Duration::from_secs(1))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !reason.is_empty() && title.contains(&reason),
        "{reason:?} / {title}"
    );
    let status = http(admin, "GET", "/status", &[], "").unwrap().json();
    let inst = &status["services"][0]["instances"][0];
    assert_eq!(
        (inst["name"].as_str(), inst["health"].as_str()),
        (Some("user-us-east-a"), Some("down"))
    );

    // a wrong token is refused, visibly, and nothing changes
    set_token(c, "wrong-token").await;
    click_and_confirm(
        c,
        "[data-kind=az][data-name=us-east-b] button[data-action=drain]",
    )
    .await;
    let msg = wait_attr(c, "#notice", "data-kind", Duration::from_secs(5), |k| {
        k == "error"
    })
    .await;
    assert_eq!(msg, "error");
    let text = find(c, "#notice-text", Duration::from_secs(1))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("Refused (401)"), "{text}");
    assert!(find(c, "#notice", Duration::from_secs(1))
        .await
        .is_displayed()
        .await
        .unwrap());
    let status = http(admin, "GET", "/status", &[], "").unwrap().json();
    assert_eq!(status["admin_overrides"], json!([]));

    // with the right token, draining an AZ moves its share to the other AZ (page and /status)
    set_token(c, "demo-admin-token").await;
    click_and_confirm(
        c,
        "[data-kind=az][data-name=us-east-b] button[data-action=drain]",
    )
    .await;
    wait_attr(c, "#notice", "data-kind", Duration::from_secs(5), |k| {
        k == "ok"
    })
    .await;
    wait_attr(
        c,
        "[data-share-of=us-east-b]",
        "text",
        Duration::from_secs(5),
        |t| t == "share 0%",
    )
    .await;
    wait_attr(
        c,
        "[data-share-of=us-east-a]",
        "text",
        Duration::from_secs(5),
        |t| t == "share 100%",
    )
    .await;
    wait_attr(
        c,
        "[data-kind=az][data-name=us-east-b]",
        "data-admin",
        Duration::from_secs(1),
        |a| a == "drain",
    )
    .await;
    let status = http(admin, "GET", "/status", &[], "").unwrap().json();
    let azs = &status["regions"][0]["azs"];
    assert_eq!(
        (
            azs[0]["share"].as_f64(),
            azs[1]["share"].as_f64(),
            azs[1]["admin"].as_str()
        ),
        (Some(1.0), Some(0.0), Some("drain"))
    );
    // the event log shows it
    wait_attr(
        c,
        "#events li.ev-admin .ev-target",
        "text",
        Duration::from_secs(5),
        |t| t == "az us-east-b",
    )
    .await;

    // screenshots: 1280x800 light and dark, phone width
    c.execute("document.documentElement.dataset.theme = 'light'", vec![])
        .await
        .map_err(|e| e.to_string())?;
    shot("console-1280x800-light.png").await;
    c.execute("document.documentElement.dataset.theme = 'dark'", vec![])
        .await
        .map_err(|e| e.to_string())?;
    shot("console-1280x800-dark.png").await;
    c.set_window_size(390, 844)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    shot("console-phone.png").await;
    Ok(())
}
