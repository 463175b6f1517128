//! The access log line, with credentials taken out of the request target:
//! `GET /activity?key=...` must not put the agent key in every log file and
//! syslog server it reaches.

use hyper::Uri;

/// Query parameters whose values are credentials (compared without case).
const SECRET_PARAMS: &[&str] = &[
    "key",
    "token",
    "session",
    "password",
    "access_token",
    "api_key",
    "apikey",
];

/// The request target as logged: path, then the query with every credential
/// parameter's value replaced by `***`.
pub fn target(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|part| {
            let name = part.split_once('=').map_or(part, |(n, _)| n);
            if is_secret(name) {
                format!("{name}=***")
            } else {
                part.to_string()
            }
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// Whether a raw (maybe percent-encoded) parameter name names a credential
/// (decoded as query parameters are: `unquote_plus`).
fn is_secret(raw: &str) -> bool {
    let decoded = crate::api::decode_segment(raw).to_ascii_lowercase();
    SECRET_PARAMS.contains(&decoded.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_the_rest_kept() {
        let t = |s: &str| target(&s.parse::<Uri>().unwrap());
        assert_eq!(t("/activity"), "/activity");
        assert_eq!(t("/activity?key=s3cret"), "/activity?key=***");
        assert_eq!(
            t("/monitoring/history?start=1&KEY=abc&limit=2"),
            "/monitoring/history?start=1&KEY=***&limit=2"
        );
        assert_eq!(t("/x?%6Bey=abc&token=t"), "/x?%6Bey=***&token=***");
        assert_eq!(t("/x?key"), "/x?key=***");
        assert_eq!(t("/x?keys=1&a=%"), "/x?keys=1&a=%");
    }
}
