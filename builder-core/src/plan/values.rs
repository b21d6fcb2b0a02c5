//! Parsing instruction values the way Docker does: ports, durations, modes, signals.

/// Expands one EXPOSE word (`80`, `80/tcp`, `8000-8002/udp`) into `port/proto` keys.
pub fn parse_port_spec(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {p}"))
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!(
            "invalid range specified for containerPort: {ports}"
        ));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Parses a `--chmod` value: an octal mode such as `755` or `0644`.
pub fn parse_chmod(s: &str) -> Result<u32, String> {
    if !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        let mode = u32::from_str_radix(s, 8).map_err(|e| e.to_string())?;
        if mode <= 0o7777 {
            return Ok(mode);
        }
    }
    Err(format!(
        "invalid --chmod value `{s}`: expected an octal mode such as 755 or 0644"
    ))
}

/// Checks a STOPSIGNAL value: a signal number or name (`SIGTERM`, `TERM`, `SIGRTMIN+3`).
pub fn check_signal(s: &str) -> Result<(), String> {
    let numeric = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let named = !name.is_empty()
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-');
    if numeric || named {
        Ok(())
    } else {
        Err(format!("invalid signal: {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_as_docker() {
        assert_eq!(parse_port_spec("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port_spec("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_port_spec("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(
            parse_port_spec("abc").unwrap_err(),
            "invalid containerPort: abc"
        );
        assert!(parse_port_spec("80/foo").is_err());
    }

    #[test]
    fn chmod_and_signals() {
        assert_eq!(parse_chmod("755").unwrap(), 0o755);
        assert_eq!(parse_chmod("0644").unwrap(), 0o644);
        assert!(parse_chmod("u+x").is_err());
        assert!(parse_chmod("999").is_err());
        assert!(check_signal("SIGTERM").is_ok());
        assert!(check_signal("9").is_ok());
        assert!(check_signal("SIGRTMIN+3").is_ok());
        assert!(check_signal("$%").is_err());
    }
}
