//! pg_hba.conf reading and writing (facts 11.4, with our decisions): every
//! line form of PostgreSQL 9.4 to 17 is understood — IP/mask, CIDR, host
//! names, `all`/`samehost`/`samenet`, `hostgssenc`/`hostnogssenc`, quoted
//! values, continuation lines — and lines we do not model (`include*`,
//! anything unknown) are kept verbatim as `{"raw": line}` entries so a read and
//! write round trip never loses them. The writer keeps the exact 2.x format.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

/// Connection types accepted when writing.
pub const CONNECTIONS: [&str; 6] = [
    "local",
    "host",
    "hostssl",
    "hostnossl",
    "hostgssenc",
    "hostnogssenc",
];

/// Splits a logical line into tokens: whitespace separated, double quotes
/// group (kept in the token), `#` outside quotes ends the line.
fn tokenize(line: &str) -> (Vec<String>, Option<String>) {
    let mut tokens = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '#' if !quoted => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
                return (tokens, Some(line[i + 1..].to_string()));
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    (tokens, None)
}

fn is_ip(t: &str) -> bool {
    t.parse::<IpAddr>().is_ok()
}

/// Parses one logical line (continuations already joined).
fn parse_line(line: &str) -> Option<Value> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return None;
    }
    if let Some(comment) = trimmed.strip_prefix('#') {
        return Some(json!({ "comment": comment }));
    }
    let (tokens, _) = tokenize(trimmed);
    let raw = || Some(json!({ "raw": trimmed }));
    let Some(kind) = tokens.first() else {
        return raw();
    };
    let rest = |from: usize| tokens.get(from..).map(|t| t.join(" ")).unwrap_or_default();
    let entry = |db: &str, user: &str, addr: String, method: &str, opts: String| {
        let mut m = Map::new();
        m.insert("connection".into(), json!(kind));
        m.insert("database".into(), json!(db));
        m.insert("user".into(), json!(user));
        m.insert("address".into(), json!(addr));
        m.insert("auth_method".into(), json!(method));
        m.insert("auth_options".into(), json!(opts));
        Some(Value::Object(m))
    };
    match kind.as_str() {
        "local" if tokens.len() >= 4 => {
            entry(&tokens[1], &tokens[2], String::new(), &tokens[3], rest(4))
        }
        "host" | "hostssl" | "hostnossl" | "hostgssenc" | "hostnogssenc" if tokens.len() >= 5 => {
            let addr = &tokens[3];
            // "IP MASK" form: an address without '/' followed by a netmask.
            if !addr.contains('/') && is_ip(addr) && tokens.len() >= 6 && is_ip(&tokens[4]) {
                entry(
                    &tokens[1],
                    &tokens[2],
                    format!("{} {}", addr, tokens[4]),
                    &tokens[5],
                    rest(6),
                )
            } else {
                entry(&tokens[1], &tokens[2], addr.clone(), &tokens[4], rest(5))
            }
        }
        _ => raw(),
    }
}

/// Parses a whole file into entries, in order.
pub fn parse(text: &str) -> Vec<Value> {
    let mut out = vec![];
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // A line ending with a backslash continues on the next one (PG 16+);
        // comments never continue.
        if !line.trim_start().starts_with('#') {
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                continue;
            }
        }
        let logical = if pending.is_empty() {
            line.to_string()
        } else {
            std::mem::take(&mut pending) + line
        };
        if let Some(v) = parse_line(&logical) {
            out.push(v);
        }
    }
    if !pending.is_empty() {
        if let Some(v) = parse_line(&pending) {
            out.push(v);
        }
    }
    out
}

/// Why entries cannot be written; the texts are the 2.x ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HbaError {
    /// An item is not an object, or holds a line break.
    #[error("Invalid HBA entry.")]
    InvalidEntry,
    /// Unknown connection type.
    #[error("Invalid connection: {0}")]
    Connection(String),
    /// Empty database.
    #[error("Invalid database: {0}")]
    Database(String),
    /// Empty user.
    #[error("Invalid user: {0}")]
    User(String),
    /// Missing address for a host entry.
    #[error("An address is required for method '{0}'.")]
    Address(String),
    /// Missing method.
    #[error("Authentication method must be set.")]
    Method,
}

fn field<'a>(m: &'a Map<String, Value>, k: &str) -> Result<&'a str, HbaError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) if !s.chars().any(|c| c == '\n' || c == '\r' || c == '\0') => Ok(s),
        _ => Err(HbaError::InvalidEntry),
    }
}

/// Writes entries in the 2.x format (CRLF; `local  all  all  trust opts`).
pub fn write(entries: &[Value]) -> Result<String, HbaError> {
    let mut out = String::new();
    for e in entries {
        let m = e.as_object().ok_or(HbaError::InvalidEntry)?;
        if m.contains_key("raw") {
            push_line(&mut out, field(m, "raw")?);
            continue;
        }
        let connection = field(m, "connection")?;
        if m.contains_key("comment") && connection.is_empty() {
            out.push_str(&format!("# {}\r\n", field(m, "comment")?.trim_start()));
            continue;
        }
        if !CONNECTIONS.contains(&connection) {
            return Err(HbaError::Connection(connection.to_string()));
        }
        let database = field(m, "database")?;
        if database.trim().is_empty() {
            return Err(HbaError::Database(database.to_string()));
        }
        let user = field(m, "user")?;
        if user.trim().is_empty() {
            return Err(HbaError::User(user.to_string()));
        }
        let address = field(m, "address")?;
        if connection != "local" && address.trim().is_empty() {
            return Err(HbaError::Address(connection.to_string()));
        }
        let method = field(m, "auth_method")?;
        if method.trim().is_empty() {
            return Err(HbaError::Method);
        }
        let options = field(m, "auth_options")?;
        push_line(
            &mut out,
            &format!("{connection}  {database}  {user} {address} {method} {options}"),
        );
    }
    Ok(out)
}

/// Appends one line and its CRLF. A line whose text ends with a backslash
/// gets a space after it: written bare, PostgreSQL (16+) and [`parse`] would
/// read that backslash as a continuation and join the next line to this one.
/// Such a line can only come from a file where the backslash was already
/// followed by a blank or was itself continued, and the space keeps its
/// meaning.
fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    if line.ends_with('\\') {
        out.push(' ');
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_keeps_the_2x_format() {
        let entries = vec![
            json!({"connection": "local", "database": "all", "user": "all", "auth_method": "trust", "auth_options": "blahblah"}),
            json!({"connection": "host", "database": "test", "user": "test", "address": "192.168.1.0/24", "auth_method": "trust"}),
            json!({"connection": "hostssl", "database": "test2", "user": "test2", "address": "192.168.1.0 255.255.255.0", "auth_method": "trust"}),
            json!({"connection": "local", "database": "all", "user": "all", "auth_method": "trust"}),
            json!({"comment": " a comment", "connection": ""}),
        ];
        assert_eq!(
            write(&entries).unwrap(),
            "local  all  all  trust blahblah\r\nhost  test  test 192.168.1.0/24 trust \r\nhostssl  test2  test2 192.168.1.0 255.255.255.0 trust \r\nlocal  all  all  trust \r\n# a comment\r\n"
        );
        assert_eq!(write(&[]).unwrap(), "");
    }

    #[test]
    fn writer_validation_messages() {
        let w = |v: Value| write(&[v]).unwrap_err().to_string();
        assert_eq!(w(json!("x")), "Invalid HBA entry.");
        assert_eq!(
            w(json!({"connection": "hots", "database": "a", "user": "b", "auth_method": "trust"})),
            "Invalid connection: hots"
        );
        assert_eq!(
            w(json!({"connection": "local", "database": "", "user": "b", "auth_method": "trust"})),
            "Invalid database: "
        );
        assert_eq!(
            w(json!({"connection": "local", "database": "a", "user": "", "auth_method": "trust"})),
            "Invalid user: "
        );
        assert_eq!(
            w(json!({"connection": "host", "database": "a", "user": "b", "auth_method": "trust"})),
            "An address is required for method 'host'."
        );
        assert_eq!(
            w(json!({"connection": "local", "database": "a", "user": "b"})),
            "Authentication method must be set."
        );
        assert_eq!(
            w(
                json!({"connection": "local", "database": "all\r\nhost all all 0.0.0.0/0 trust", "user": "b", "auth_method": "trust"})
            ),
            "Invalid HBA entry."
        );
        assert_eq!(
            w(json!({"connection": "local", "database": 1, "user": "b", "auth_method": "trust"})),
            "Invalid HBA entry."
        );
    }

    #[test]
    fn trailing_backslash_is_not_written_as_a_continuation() {
        // Found by fuzz/fuzz_targets/hba_roundtrip.rs: "\\ " read as the raw
        // line "\\", written back as "\\\r\n", then read as a continuation
        // that swallowed the next line (here the reject rule).
        for text in [
            "\\ \nhost all all 0.0.0.0/0 reject\n",
            "local all all trust opt\\ \nhost all all 0.0.0.0/0 reject\n",
            "local all all trust opt\\\\\n\nhost all all 0.0.0.0/0 reject\n",
            "include x\\\\",
        ] {
            let e = parse(text);
            let written = write(&e).unwrap();
            assert_eq!(parse(&written), e, "{text:?} written as {written:?}");
        }
        assert_eq!(write(&[json!({"raw": "a\\"})]).unwrap(), "a\\ \r\n");
    }

    #[test]
    fn parser_understands_every_line_form() {
        let text = "# TYPE DATABASE USER ADDRESS METHOD\n\
            local   all             postgres                                peer\n\
            local   all             all                                     md5 # trailing\n\
            host    all             all             127.0.0.1/32            scram-sha-256\n\
            host    all             all             ::1/128                 trust\n\
            host    all             all             10.0.0.1 255.255.255.0  md5\n\
            host    all             all             .example.com            md5\n\
            host    all             all             db.example.com          md5\n\
            host    all             all             all                     reject\n\
            host    all             all             samehost                trust\n\
            hostssl \"my db\"         +admins         samenet                 cert clientcert=verify-full\n\
            hostgssenc all          all             0.0.0.0/0               gss include_realm=0\n\
            hostnogssenc replication all            192.168.0.0/16          md5\n\
            host    db1,db2         @users.txt      10.1.0.0/16 \\\n\
                    ldap ldapserver=ldap.example.com ldapprefix=\"cn=\" ldapsuffix=\", dc=example\"\n\
            include_dir hba.d\n\
            include_if_exists extra.conf\n\
            include other.conf\n\
            \n\
            what is this line\n";
        let e = parse(text);
        assert_eq!(
            e[0],
            json!({"comment": " TYPE DATABASE USER ADDRESS METHOD"})
        );
        assert_eq!(e[1]["auth_method"], "peer");
        assert_eq!(e[1]["address"], "");
        assert_eq!(
            e[2]["auth_options"], "",
            "trailing comment is not an option"
        );
        assert_eq!(e[3]["address"], "127.0.0.1/32");
        assert_eq!(e[3]["auth_method"], "scram-sha-256");
        assert_eq!(e[4]["address"], "::1/128");
        assert_eq!(e[5]["address"], "10.0.0.1 255.255.255.0");
        assert_eq!(e[5]["auth_method"], "md5");
        assert_eq!(e[6]["address"], ".example.com");
        assert_eq!(e[7]["address"], "db.example.com");
        assert_eq!(e[8]["address"], "all");
        assert_eq!(e[9]["address"], "samehost");
        assert_eq!(e[10]["database"], "\"my db\"");
        assert_eq!(e[10]["user"], "+admins");
        assert_eq!(e[10]["address"], "samenet");
        assert_eq!(e[10]["auth_options"], "clientcert=verify-full");
        assert_eq!(e[11]["connection"], "hostgssenc");
        assert_eq!(e[12]["connection"], "hostnogssenc");
        assert_eq!(e[13]["database"], "db1,db2");
        assert_eq!(e[13]["auth_method"], "ldap");
        assert!(e[13]["auth_options"]
            .as_str()
            .unwrap()
            .contains("ldapsuffix=\", dc=example\""));
        assert_eq!(e[14], json!({"raw": "include_dir hba.d"}));
        assert_eq!(e[15], json!({"raw": "include_if_exists extra.conf"}));
        assert_eq!(e[16], json!({"raw": "include other.conf"}));
        assert_eq!(e[17], json!({"raw": "what is this line"}));
        assert_eq!(e.len(), 18);
        // Round trip: what we write reads back the same.
        let written = write(&e).unwrap();
        assert_eq!(parse(&written), e);
    }
}
