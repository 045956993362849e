//! Finds or installs the browser that the gateway's browser tests drive, in this order:
//! 1. the paths in the environment (`TICKETING_CHROME`, `TICKETING_CHROMEDRIVER`);
//! 2. Chromium (or Chrome) and chromedriver on PATH;
//! 3. on Debian/Ubuntu as root, the `chromium` and `chromium-driver` packages installed with apt;
//! 4. otherwise a one-line message saying what to install.
//!
//! The tests read the same two variables, so `cargo xtask test` hands them what it found.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::{process::find_binary, stores::apt_install};

pub const CHROME_VAR: &str = "TICKETING_CHROME";
pub const CHROMEDRIVER_VAR: &str = "TICKETING_CHROMEDRIVER";

/// The names a Chromium-based browser goes by on Linux distributions and in Google's package.
const CHROME_NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

pub struct Browser {
    pub chrome: PathBuf,
    pub chromedriver: PathBuf,
}

pub async fn ensure() -> anyhow::Result<Browser> {
    if let Some(browser) = found()? {
        return Ok(browser);
    }
    apt_install(&["chromium", "chromium-driver"]).await?;
    found()?.context(
        "the browser tests need Chromium and chromedriver: install them \
         (Debian/Ubuntu: `apt-get install chromium chromium-driver`) \
         or set TICKETING_CHROME and TICKETING_CHROMEDRIVER to their paths",
    )
}

/// Both programs when both are there; a path set in the environment must exist.
fn found() -> anyhow::Result<Option<Browser>> {
    let chrome = match from_env(CHROME_VAR)? {
        Some(path) => Some(path),
        None => CHROME_NAMES.iter().find_map(|name| find_binary(name)),
    };
    let chromedriver = match from_env(CHROMEDRIVER_VAR)? {
        Some(path) => Some(path),
        None => find_binary("chromedriver"),
    };
    Ok(chrome
        .zip(chromedriver)
        .map(|(chrome, chromedriver)| Browser {
            chrome,
            chromedriver,
        }))
}

fn from_env(var: &str) -> anyhow::Result<Option<PathBuf>> {
    let Some(value) = std::env::var_os(var) else {
        return Ok(None);
    };
    let path = PathBuf::from(value);
    if !Path::new(&path).is_file() {
        bail!("{var}={} is not a file", path.display());
    }
    Ok(Some(path))
}
