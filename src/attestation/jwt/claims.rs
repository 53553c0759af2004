//! The registered claims (RFC 7519) every token must pass, and the
//! attestor's own requirements.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::Refusal;
use super::template::claim_text;

/// How far the CA's clock and the issuer's may disagree.
pub(crate) const CLOCK_SKEW: i64 = 60;

/// The checked time claims and the replay key of a token.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub(crate) expires_at: OffsetDateTime,
    pub(crate) jti: Option<String>,
    pub(crate) subject: Option<String>,
}

fn seconds(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| Refusal::new("malformed jwt", format!("`{name}` is not a time"))),
        Some(_) => Err(Refusal::new(
            "malformed jwt",
            format!("`{name}` is not a number"),
        )),
    }
}

/// Checks `iss`, `aud`, `exp`, `nbf`, `iat` and `jti`.
pub(crate) fn check_registered(
    claims: &Map<String, Value>,
    issuer: &str,
    audiences: &[String],
    require_jti: bool,
    now: OffsetDateTime,
) -> Result<Registered, Refusal> {
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == issuer => {}
        _ => {
            return Err(Refusal::new(
                "jwt wrong issuer",
                "the token's issuer is not this attestor's",
            ));
        }
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => audiences.contains(aud),
        Some(Value::Array(auds)) => auds.iter().any(|aud| {
            aud.as_str()
                .is_some_and(|aud| audiences.iter().any(|a| a == aud))
        }),
        _ => false,
    };
    if !audience_ok {
        return Err(Refusal::new(
            "jwt wrong audience",
            "the token's audience is not one this attestor accepts",
        ));
    }
    let now_seconds = now.unix_timestamp();
    let exp = seconds(claims, "exp")?
        .ok_or_else(|| Refusal::new("malformed jwt", "the token has no `exp`"))?;
    if exp <= now_seconds - CLOCK_SKEW {
        return Err(Refusal::new("jwt expired", "the token has expired"));
    }
    if seconds(claims, "nbf")?.is_some_and(|nbf| nbf > now_seconds + CLOCK_SKEW) {
        return Err(Refusal::new(
            "jwt not yet valid",
            "the token is not valid yet (nbf)",
        ));
    }
    if seconds(claims, "iat")?.is_some_and(|iat| iat > now_seconds + CLOCK_SKEW) {
        return Err(Refusal::new(
            "jwt not yet valid",
            "the token was issued in the future (iat)",
        ));
    }
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= 256 => Some(jti.clone()),
        Some(_) => {
            return Err(Refusal::new(
                "malformed jwt",
                "the `jti` is not a short string",
            ));
        }
        None if require_jti => {
            return Err(Refusal::new(
                "jwt without jti",
                "the token has no `jti`, which this attestor requires against replay",
            ));
        }
        None => None,
    };
    let subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
    let expires_at = OffsetDateTime::from_unix_timestamp(exp)
        .map_err(|_| Refusal::new("malformed jwt", "`exp` is out of range"))?;
    Ok(Registered {
        expires_at,
        jti,
        subject,
    })
}

/// Checks the attestor's `require` rules: each claim must hold one of the
/// listed values.
pub(crate) fn check_required(
    root: &Value,
    required: &[(String, Vec<String>)],
) -> Result<(), Refusal> {
    for (pointer, accepted) in required {
        let value = claim_text(root, pointer).map_err(|_| {
            Refusal::new(
                "jwt requirement not met",
                format!("the token has no claim {pointer}"),
            )
        })?;
        if !accepted.contains(&value) {
            return Err(Refusal::new(
                "jwt requirement not met",
                format!("claim {pointer} holds a value this attestor does not accept"),
            ));
        }
    }
    Ok(())
}
