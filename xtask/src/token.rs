//! `cargo xtask token --user 7 [--admin] [--ttl 1h]`: a bearer token from the development key
//! that `cargo xtask up --auth jwt` created, for curl and the like. Only the token goes to
//! stdout, so `-H "authorization: Bearer $(cargo xtask token --user 7)"` works.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use kit::dev_identity::{self, DevKey};

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// The user the token is for (its `sub`).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=9_007_199_254_740_991))]
    user: i64,
    /// Give the token the operator role.
    #[arg(long)]
    admin: bool,
    /// How long it is valid: a number with s, m, h or d (30s, 15m, 1h, 2d).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
    /// The key's directory (default: target/dev-identity).
    #[arg(long)]
    key_dir: Option<PathBuf>,
}

pub fn token(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let dir = args
        .key_dir
        .unwrap_or_else(|| dev_identity::default_dir(&crate::process::target_dir()));
    println!("{}", mint(&dir, args.user, args.admin, args.ttl)?);
    Ok(ExitCode::SUCCESS)
}

/// A token from the key in `dir`; an error saying how to create the key when there is none.
pub fn mint(
    dir: &std::path::Path,
    user: i64,
    admin: bool,
    ttl: Duration,
) -> anyhow::Result<String> {
    if !dir.join(dev_identity::KEY_FILE).exists() {
        anyhow::bail!(
            "no development key in {}: run `cargo xtask up --auth jwt` first (it creates one)",
            dir.display()
        );
    }
    DevKey::load(dir)?.mint(user, admin, ttl)
}

/// `30s`, `15m`, `1h`, `2d` (a bare number is seconds); more than zero.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with s, m, h or d, e.g. 15m"))?;
    let unit_seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use s, m, h or d)"
            ));
        }
    };
    match count.checked_mul(unit_seconds) {
        Some(0) => Err("the ttl must be more than zero".into()),
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Err(format!("{text:?} is too long")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
    use kit::dev_identity::{ADMIN_ROLE, AUDIENCE, DevKey, ISSUER, JWKS_FILE};

    use super::{mint, parse_ttl};

    #[test]
    fn ttls_take_seconds_minutes_hours_and_days() {
        assert_eq!(parse_ttl("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        for bad in [
            "",
            "h",
            "1w",
            "1.5h",
            "-1h",
            "0s",
            "1 h",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_token_verifies_against_the_written_jwks() {
        let dir = std::env::temp_dir().join(format!("xtask-token-{}", std::process::id()));
        let missing = mint(&dir, 7, false, Duration::from_secs(60)).unwrap_err();
        assert!(
            missing.to_string().contains("cargo xtask up --auth jwt"),
            "{missing}"
        );
        DevKey::generate().unwrap().write(&dir).unwrap();

        let token = mint(&dir, 7, true, Duration::from_secs(3600)).unwrap();
        let jwks: JwkSet =
            serde_json::from_str(&std::fs::read_to_string(dir.join(JWKS_FILE)).unwrap()).unwrap();
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let key = DecodingKey::from_jwk(jwks.find(&kid).expect("the token's kid is in the JWKS"))
            .unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "7");
        assert_eq!(claims["roles"], serde_json::json!([ADMIN_ROLE]));
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );

        // Another key's JWKS does not verify it.
        let other = DevKey::generate().unwrap();
        let jwks: JwkSet = serde_json::from_str(&other.jwks_json()).unwrap();
        let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
