//! A real headless Chromium for the browser tests, driven over WebDriver (fantoccini, plain
//! HTTP to a chromedriver of our own on a port it picks). Each test gets its own chromedriver
//! and its own browser sessions; a guard quits the sessions and kills chromedriver with the
//! browsers it started, also when the test fails. Every step leaves a screenshot in
//! target/browser-screenshots/<test>/, and the browser console is collected so that a test can
//! assert that no page logged an error.
//!
//! Chromium and chromedriver come from `TICKETING_CHROME` and `TICKETING_CHROMEDRIVER` (set by
//! `cargo xtask test`, which finds or installs them), else from PATH; missing, the test fails
//! saying so rather than skipping.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    future::Future,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, error::CmdError, wd::WebDriverCompatibleCommand};
use serde_json::{Value, json};
use tokio::{
    io::AsyncReadExt,
    process::{Child, Command},
};

/// How long a DOM condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long one WebDriver command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(15);
/// How long chromedriver may take to say which port it listens on.
const DRIVER_START_LIMIT: Duration = Duration::from_secs(10);
/// How long a browser session may take to start.
const SESSION_START_LIMIT: Duration = Duration::from_secs(30);
/// How often a condition is checked again.
const POLL_EVERY: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub width: u32,
    pub height: u32,
}

pub const DESKTOP: Window = Window {
    width: 1280,
    height: 900,
};
/// Chrome's narrowest window (narrower ones are widened to this).
const MIN_WINDOW_WIDTH: u32 = 500;
/// The narrowest phone the page must work on.
pub const PHONE: Window = Window {
    width: 360,
    height: 780,
};

/// One chromedriver and the browser sessions a test opened through it.
pub struct Browser {
    driver: Driver,
    chrome: PathBuf,
    folder: Arc<PathBuf>,
    shots: Arc<AtomicUsize>,
    pages: Mutex<Vec<Page>>,
}

impl Browser {
    /// Starts chromedriver for the test `test` (its screenshots go to a folder of that name,
    /// emptied first).
    pub async fn start(test: &str) -> Self {
        let (chrome, chromedriver) = programs();
        let folder = screenshot_root().join(test);
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder)
            .unwrap_or_else(|error| panic!("creating {}: {error}", folder.display()));
        eprintln!("browser: screenshots of {test} in {}", folder.display());
        let driver = Driver::start(&chromedriver, &folder.join("chromedriver.log")).await;
        Self {
            driver,
            chrome,
            folder: Arc::new(folder),
            shots: Arc::new(AtomicUsize::new(0)),
            pages: Mutex::new(Vec::new()),
        }
    }

    /// A new headless browser session (own profile, so own storage) with this window, which
    /// names the session's screenshots.
    pub async fn open(&self, name: &str, window: Window) -> Page {
        let mut chrome_options = json!({
            "binary": self.chrome,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--no-first-run",
                "--lang=en-US",
                format!("--window-size={},{}", window.width, window.height),
            ],
        });
        if window.width < MIN_WINDOW_WIDTH {
            // A desktop window is never that narrow: emulate the phone's screen instead.
            chrome_options["mobileEmulation"] = json!({
                "deviceMetrics": {
                    "width": window.width,
                    "height": window.height,
                    "pixelRatio": 1.0,
                    "touch": true,
                },
            });
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), chrome_options);
        // What the page writes to its console, and its uncaught errors and failed loads.
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{}", self.driver.port);
        let mut builder = ClientBuilder::new(connector);
        let connecting = builder.capabilities(capabilities).connect(&url);
        let client = match tokio::time::timeout(SESSION_START_LIMIT, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => panic!(
                "browser: Chromium did not start a session for {name}: {error} (chromedriver's log: {})",
                self.folder.join("chromedriver.log").display()
            ),
            Err(_) => {
                panic!("browser: no browser session for {name} within {SESSION_START_LIMIT:?}")
            }
        };
        let session = within("session id", client.session_id())
            .await
            .expect("a W3C session has an id");
        self.driver
            .sessions
            .lock()
            .expect("sessions lock")
            .push(session);
        let page = Page {
            client,
            name: name.to_owned(),
            folder: self.folder.clone(),
            shots: self.shots.clone(),
            console: Arc::new(Mutex::new(Vec::new())),
        };
        self.pages.lock().expect("pages lock").push(page.clone());
        page
    }

    /// Where this test's screenshots are.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Collects the last console lines of every page, fails the test if any page logged an
    /// error, and quits every session.
    pub async fn finish(self) {
        self.finish_expecting(&[]).await;
    }

    /// As [`Browser::finish`], except for the error lines that contain one of `expected`: the
    /// browser logs every 4xx answer as an error, also one the test provoked on purpose.
    pub async fn finish_expecting(self, expected: &[&str]) {
        let pages: Vec<Page> = std::mem::take(&mut *self.pages.lock().expect("pages lock"));
        let mut errors = Vec::new();
        for page in &pages {
            page.collect_console().await;
            errors.extend(
                page.console_errors()
                    .into_iter()
                    .filter(|line| !expected.iter().any(|part| line.contains(part)))
                    .map(|line| format!("{}: {line}", page.name)),
            );
        }
        for page in pages {
            let _ = tokio::time::timeout(COMMAND_LIMIT, page.client.close()).await;
        }
        self.driver.sessions.lock().expect("sessions lock").clear();
        assert!(
            errors.is_empty(),
            "the browser console has errors:\n{}",
            errors.join("\n")
        );
    }
}

/// Chromium and chromedriver: from the environment (`cargo xtask test`), else from PATH.
fn programs() -> (PathBuf, PathBuf) {
    let chrome = std::env::var_os("TICKETING_CHROME")
        .map(PathBuf::from)
        .or_else(|| {
            [
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ]
            .into_iter()
            .find_map(on_path)
        });
    let driver = std::env::var_os("TICKETING_CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| on_path("chromedriver"));
    match (chrome, driver) {
        (Some(chrome), Some(driver)) => (chrome, driver),
        _ => panic!(
            "the browser tests need Chromium and chromedriver: run them with `cargo xtask test` \
             (it finds them or installs the Debian packages chromium and chromium-driver), or \
             set TICKETING_CHROME and TICKETING_CHROMEDRIVER to their paths"
        ),
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// target/browser-screenshots (beside the tests' own tmp folder, so CARGO_TARGET_DIR counts).
fn screenshot_root() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-screenshots")
}

/// Runs one WebDriver command within [`COMMAND_LIMIT`]; the test fails on an error.
async fn within<T>(what: &str, command: impl Future<Output = Result<T, CmdError>>) -> T {
    match tokio::time::timeout(COMMAND_LIMIT, command).await {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => panic!("browser: {what}: {error}"),
        Err(_) => panic!("browser: {what}: no answer within {COMMAND_LIMIT:?}"),
    }
}

/// One browser session: a tab that the test drives like a person would.
#[derive(Clone)]
pub struct Page {
    client: Client,
    name: String,
    folder: Arc<PathBuf>,
    shots: Arc<AtomicUsize>,
    console: Arc<Mutex<Vec<LogEntry>>>,
}

#[derive(Clone, Debug)]
struct LogEntry {
    level: String,
    message: String,
    /// The page's path when the line was collected (collected before every navigation).
    path: String,
}

impl Page {
    pub async fn goto(&self, url: &str) {
        self.collect_console().await;
        within(&format!("{}: open {url}", self.name), self.client.goto(url)).await;
    }

    /// Runs a script (a function body: `return …`) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        within(
            &format!("{}: script {script}", self.name),
            self.client.execute(script, Vec::new()),
        )
        .await
    }

    /// The value `script` returns once it is neither null, undefined nor false; the test fails
    /// (with a screenshot and what the page shows) when that takes longer than [`WAIT`].
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        self.wait_for_within(what, script, WAIT).await
    }

    pub async fn wait_for_within(&self, what: &str, script: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(script).await;
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return value;
            }
            if started.elapsed() > limit {
                let shot = self.screenshot(&format!("timeout-{what}")).await;
                self.collect_console().await;
                let shown = self.eval(SHOWN).await;
                panic!(
                    "{}: waited {limit:?} for {what}; the page shows {shown}; console errors: {:?}; screenshot {}",
                    self.name,
                    self.console_errors(),
                    shot.display()
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Waits until the page's root element (`main#<root>`) is in `state`.
    pub async fn wait_for_state(&self, root: &str, state: &str) {
        let script = format!(
            "const el = document.querySelector('main#{root}'); \
             return el !== null && el.dataset.state === {state:?};"
        );
        self.wait_for(&format!("main#{root} in state {state}"), &script)
            .await;
    }

    /// The trimmed text of the first element matching `css`, or None when there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let script = format!(
            "const el = document.querySelector({css:?}); \
             return el === null ? null : el.textContent.trim();"
        );
        self.eval(&script).await.as_str().map(str::to_owned)
    }

    /// Waits until the trimmed text of `css` is `expected`.
    pub async fn wait_for_text(&self, css: &str, expected: &str) {
        let script = format!(
            "const el = document.querySelector({css:?}); \
             return el !== null && el.textContent.trim() === {expected:?};"
        );
        self.wait_for(&format!("{css} to read {expected:?}"), &script)
            .await;
    }

    /// Waits until `css` is there, shown and enabled, then clicks it as a person would.
    pub async fn click(&self, css: &str) {
        let script = format!(
            "const el = document.querySelector({css:?}); \
             return el !== null && !el.disabled && el.getClientRects().length > 0;"
        );
        self.wait_for(&format!("{css} to be clickable"), &script)
            .await;
        let element = within(
            &format!("{}: find {css}", self.name),
            self.client.find(Locator::Css(css)),
        )
        .await;
        within(&format!("{}: click {css}", self.name), element.click()).await;
    }

    /// Waits until the input `css` is there, then types `text` into it (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let script = format!("return document.querySelector({css:?}) !== null;");
        self.wait_for(&format!("{css} to be there"), &script).await;
        let element = within(
            &format!("{}: find {css}", self.name),
            self.client.find(Locator::Css(css)),
        )
        .await;
        within(&format!("{}: clear {css}", self.name), element.clear()).await;
        within(
            &format!("{}: type into {css}", self.name),
            element.send_keys(text),
        )
        .await;
    }

    /// The visible controls (buttons, inputs, selects, text areas, links) whose accessible name,
    /// as the browser computes it (WebDriver's computed label), is empty: their HTML, shortened.
    pub async fn unnamed_controls(&self) -> Vec<String> {
        let controls = self
            .eval(
                "return Array.from(document.querySelectorAll(\
                   'button, input:not([type=hidden]), select, textarea, a[href], [role=button]'))\
                   .filter(el => el.getClientRects().length > 0)\
                   .map(el => [el, el.outerHTML.slice(0, 160)]);",
            )
            .await;
        let mut unnamed = Vec::new();
        for control in controls.as_array().cloned().unwrap_or_default() {
            let element = control[0]
                .as_object()
                .and_then(|reference| reference.values().next())
                .and_then(Value::as_str)
                .expect("an element reference")
                .to_owned();
            let label = within(
                &format!("{}: computed label", self.name),
                self.client.issue_cmd(ComputedLabel(element)),
            )
            .await;
            if label.as_str().is_none_or(|name| name.trim().is_empty()) {
                unnamed.push(control[1].as_str().unwrap_or_default().to_owned());
            }
        }
        unnamed
    }

    /// A screenshot named after the step, and the console lines logged up to now.
    pub async fn step(&self, step: &str) -> PathBuf {
        self.collect_console().await;
        self.screenshot(step).await
    }

    async fn screenshot(&self, step: &str) -> PathBuf {
        let number = self.shots.fetch_add(1, Ordering::SeqCst) + 1;
        let file = self.folder.join(format!(
            "{number:02}-{}-{}.png",
            self.name,
            file_name_part(step)
        ));
        let png = match self.full_page_png().await {
            Some(png) => png,
            None => {
                within(
                    &format!("{}: screenshot", self.name),
                    self.client.screenshot(),
                )
                .await
            }
        };
        std::fs::write(&file, png)
            .unwrap_or_else(|error| panic!("writing {}: {error}", file.display()));
        eprintln!("browser: {}", file.display());
        file
    }

    /// The whole page, not only the window (WebDriver's screenshot stops at the fold), through
    /// chromedriver's DevTools pass-through; None if that is not available.
    async fn full_page_png(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let metrics = self.devtools("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64()?.ceil();
        // Bounded, so that a runaway layout cannot make a huge image.
        let height = size["height"].as_f64()?.ceil().min(6_000.0);
        let shot = self
            .devtools(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                }),
            )
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str()?)
            .ok()
    }

    async fn devtools(&self, method: &str, params: Value) -> Option<Value> {
        let command = DevTools {
            method: method.to_owned(),
            params,
        };
        match tokio::time::timeout(COMMAND_LIMIT, self.client.issue_cmd(command)).await {
            Ok(Ok(value)) => Some(value),
            _ => None,
        }
    }

    /// Reads what the browser logged since the last call (chromedriver hands each line once).
    async fn collect_console(&self) {
        let Ok(Ok(entries)) =
            tokio::time::timeout(COMMAND_LIMIT, self.client.issue_cmd(BrowserLog)).await
        else {
            // A session that already went away has nothing more to say.
            return;
        };
        let entries = entries.as_array().cloned().unwrap_or_default();
        let path = match tokio::time::timeout(COMMAND_LIMIT, self.client.current_url()).await {
            Ok(Ok(url)) => url.path().to_owned(),
            _ => "?".to_owned(),
        };
        let mut console = self.console.lock().expect("console lock");
        for entry in entries {
            console.push(LogEntry {
                level: entry["level"].as_str().unwrap_or_default().to_owned(),
                message: entry["message"].as_str().unwrap_or_default().to_owned(),
                path: path.clone(),
            });
        }
    }

    /// The error lines (level SEVERE: console.error, uncaught exceptions, failed loads) so far.
    pub fn console_errors(&self) -> Vec<String> {
        self.console
            .lock()
            .expect("console lock")
            .iter()
            .filter(|entry| entry.level == "SEVERE")
            .map(|entry| format!("on {}: {}", entry.path, entry.message))
            .collect()
    }

    /// Collects the console now and fails the test if this page logged an error.
    pub async fn assert_no_console_errors(&self) {
        self.collect_console().await;
        let errors = self.console_errors();
        assert!(
            errors.is_empty(),
            "{}: the browser console has errors:\n{}",
            self.name,
            errors.join("\n")
        );
    }
}

/// What a page shows, for a failure message: the state of its root and any alert.
const SHOWN: &str = "const root = document.querySelector('main'); \
    const message = document.querySelector('#message'); \
    return { url: location.pathname, \
             root: root === null ? null : root.id, \
             state: root === null ? null : root.dataset.state, \
             message: message === null ? null : message.textContent.trim() };";

fn file_name_part(step: &str) -> String {
    step.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect()
}

/// chromedriver's log endpoint: the browser console since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type": "browser"}"#.to_owned()),
        )
    }
}

/// chromedriver's pass-through to a DevTools method.
#[derive(Debug)]
struct DevTools {
    method: String,
    params: Value,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.method, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// WebDriver's Get Computed Label: the element's accessible name.
#[derive(Debug)]
struct ComputedLabel(String);

impl WebDriverCompatibleCommand for ComputedLabel {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/element/{}/computedlabel",
            session_id.unwrap_or_default(),
            self.0
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::GET, None)
    }
}

/// chromedriver in a process group of its own, so that killing the group ends the browsers
/// it started too.
struct Driver {
    child: Child,
    port: u16,
    /// Sessions still open: quit on drop when a failing test never reached `finish`.
    sessions: Mutex<Vec<String>>,
}

impl Driver {
    /// Starts chromedriver on a port of its choosing. With port 0 it picks a port free for
    /// IPv6 and then binds IPv4 on the same number, which another process may hold: it then
    /// exits at once ("Address already in use"), and is started again.
    async fn start(program: &Path, log: &Path) -> Self {
        const ATTEMPTS: usize = 5;
        for _ in 1..ATTEMPTS {
            if let Some(driver) = Self::launch(program, log).await {
                return driver;
            }
        }
        Self::launch(program, log).await.unwrap_or_else(|| {
            panic!(
                "{} exited before it listened, {ATTEMPTS} times (its log: {})",
                program.display(),
                log.display()
            )
        })
    }

    /// One start: `None` when it exited before it listened.
    async fn launch(program: &Path, log: &Path) -> Option<Self> {
        let mut child = Command::new(program)
            // Port 0: chromedriver picks a free port and says which on stdout.
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", program.display()));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let announced = async {
            let mut seen = Vec::new();
            let mut buffer = [0u8; 1024];
            loop {
                let read = stdout.read(&mut buffer).await.ok()?;
                if read == 0 {
                    return None;
                }
                seen.extend_from_slice(&buffer[..read]);
                if let Some(port) = announced_port(&String::from_utf8_lossy(&seen)) {
                    return Some(port);
                }
            }
        };
        let port = match tokio::time::timeout(DRIVER_START_LIMIT, announced).await {
            Ok(Some(port)) => port,
            Ok(None) => return None,
            Err(_) => panic!(
                "{} did not say its port within {DRIVER_START_LIMIT:?}",
                program.display()
            ),
        };
        // Keep reading what it prints so that a full pipe never blocks it.
        tokio::spawn(async move {
            let mut sink = [0u8; 1024];
            while matches!(stdout.read(&mut sink).await, Ok(read) if read > 0) {}
        });
        Some(Self {
            child,
            port,
            sessions: Mutex::new(Vec::new()),
        })
    }

    /// Ends a session with a plain blocking request: Drop cannot await, and the test's runtime
    /// may be unwinding.
    fn quit_session(&self, session: &str) {
        let Ok(mut stream) =
            TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(2))
        else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        // chromedriver answers once the browser is gone; the head of the answer is enough (it
        // may keep the connection open, so reading to the end would wait for the timeout).
        let mut answer = Vec::new();
        let mut chunk = [0u8; 512];
        while !answer.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut chunk) {
                Ok(read) if read > 0 => answer.extend_from_slice(&chunk[..read]),
                _ => return,
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|p| p.into_inner()));
        for session in sessions {
            self.quit_session(&session);
        }
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.start_kill();
    }
}

/// The port in chromedriver's "ChromeDriver was started successfully on port 41233." line.
fn announced_port(output: &str) -> Option<u16> {
    let rest = output.split("started successfully on port ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    // The number is whole only once the sentence's full stop has arrived.
    rest[digits.len()..].starts_with('.').then_some(())?;
    digits.parse().ok()
}
