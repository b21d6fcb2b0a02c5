//! Splitting one joined instruction line into keyword, flags and arguments, with the splitter
//! BuildKit uses for each keyword (JSON-or-text, whitespace, quoted words, `key=value` pairs).

use super::error::ParseErrorKind;

/// The arguments of one instruction as split by its keyword's splitter.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SplitArgs {
    pub args: Vec<String>,
    pub json: bool,
}

impl SplitArgs {
    fn words(args: Vec<String>) -> Self {
        SplitArgs { args, json: false }
    }
}

/// `line` → (keyword, flag words, the rest trimmed). The keyword ends at the first run of ASCII
/// blanks; flags are the following words that start with `--`, up to a bare `--`.
pub(super) fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let trimmed = line.trim();
    let mut parts = split_blanks(trimmed, 2).into_iter();
    let keyword = parts.next().unwrap_or_default().to_string();
    match parts.next() {
        Some(rest) => {
            let (rest, flags) = extract_flags(rest, escape);
            (keyword, flags, rest.trim().to_string())
        }
        None => (keyword, Vec::new(), String::new()),
    }
}

/// Whether `c` is one of the blanks BuildKit splits keywords and simple arguments on.
fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits `s` on runs of blanks into at most `limit` pieces (0 = no limit), keeping empty
/// pieces at the ends like Go's `Regexp.Split`.
pub(super) fn split_blanks(s: &str, limit: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if limit != 0 && pieces.len() + 1 == limit {
            break;
        }
        if is_blank(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !is_blank(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            pieces.push(&s[start..i]);
            start = end;
        }
    }
    pieces.push(&s[start..]);
    pieces
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Spaces,
    Word,
    Quote(char),
}

/// Takes the leading `--flag` words off `line`: returns the rest of the line and the flags with
/// quotes and escapes processed.
fn extract_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    while i <= chars.len() {
        let at_end = i == chars.len();
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            let (offset, c) = chars[i];
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            let starts_flag = c == '-' && chars.get(i + 1).is_some_and(|&(_, d)| d == '-');
            if !starts_flag {
                return (&line[offset..], flags);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                flags.push(word);
            }
            return ("", flags);
        }
        let (offset, mut c) = chars[i];
        match phase {
            Phase::Word => {
                if c.is_whitespace() {
                    if word == "--" {
                        return (&line[offset..], flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    phase = Phase::Spaces;
                    i += 1;
                    continue;
                }
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                    i += 1;
                    continue;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue;
                    }
                    i += 1;
                    c = chars[i].1;
                }
                word.push(c);
            }
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                    i += 1;
                    continue;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                    i += 1;
                    c = chars[i].1;
                }
                word.push(c);
            }
            Phase::Spaces => {}
        }
        i += 1;
    }
    ("", flags)
}

/// Splits `rest` into words on whitespace, respecting quotes; quotes and escapes stay in the
/// words as written (BuildKit's `parseWords`, used by ARG, ENV and LABEL).
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    while i <= chars.len() {
        let at_end = i == chars.len();
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if chars[i].is_whitespace() {
                i += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        let mut c = chars[i];
        match phase {
            Phase::Word => {
                if c.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    i += 1;
                    continue;
                }
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                    c = chars[i];
                }
                word.push(c);
            }
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                }
                if c == escape && quote != '\'' {
                    if i + 1 == chars.len() {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                    c = chars[i];
                }
                word.push(c);
            }
            Phase::Spaces => {}
        }
        i += 1;
    }
    words
}

/// Outcome of trying to read `rest` as a JSON array of strings.
pub(super) enum Json {
    /// It is one.
    Strings(Vec<String>),
    /// It is not JSON (or not an array): the caller falls back to text.
    NotJson,
}

/// Reads `rest` as a JSON array of strings; a valid array holding anything else is an error.
pub(super) fn parse_json(rest: &str) -> Result<Json, ParseErrorKind> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(Json::NotJson);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(Json::NotJson);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(ParseErrorKind::NotStringArray),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Strings)
}

/// RUN, CMD, ENTRYPOINT, SHELL: a JSON array, or else the whole text as one argument.
pub(super) fn parse_maybe_json(rest: &str) -> Result<SplitArgs, ParseErrorKind> {
    if rest.is_empty() {
        return Ok(SplitArgs::default());
    }
    Ok(match parse_json(rest)? {
        Json::Strings(args) => SplitArgs { args, json: true },
        Json::NotJson => SplitArgs::words(vec![rest.to_string()]),
    })
}

/// ADD, COPY, VOLUME: a JSON array, or else whitespace-separated words.
pub(super) fn parse_maybe_json_to_list(rest: &str) -> Result<SplitArgs, ParseErrorKind> {
    Ok(match parse_json(rest)? {
        Json::Strings(args) => SplitArgs { args, json: true },
        Json::NotJson => parse_blank_separated(rest),
    })
}

/// FROM, EXPOSE: words separated by blanks, no quoting.
pub(super) fn parse_blank_separated(rest: &str) -> SplitArgs {
    if rest.is_empty() {
        return SplitArgs::default();
    }
    SplitArgs::words(
        split_blanks(rest, 0)
            .into_iter()
            .map(String::from)
            .collect(),
    )
}

/// MAINTAINER, USER, WORKDIR, STOPSIGNAL: the rest of the line as one argument.
pub(super) fn parse_string(rest: &str) -> SplitArgs {
    if rest.is_empty() {
        return SplitArgs::default();
    }
    SplitArgs::words(vec![rest.to_string()])
}

/// ARG: quoted words, each kept whole.
pub(super) fn parse_name_or_name_val(rest: &str, escape: char) -> SplitArgs {
    SplitArgs::words(parse_words(rest, escape))
}

/// ENV, LABEL: `key value separator` triples, from `k=v` words or the legacy `KEY value` form.
pub(super) fn parse_name_val(
    rest: &str,
    keyword: &str,
    escape: char,
) -> Result<SplitArgs, ParseErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(SplitArgs::default());
    };
    if !first.contains('=') {
        let parts = split_blanks(rest, 2);
        let [key, value] = parts.as_slice() else {
            return Err(ParseErrorKind::Invalid(format!(
                "{keyword} must have two arguments"
            )));
        };
        return Ok(SplitArgs::words(vec![
            key.to_string(),
            value.to_string(),
            String::new(),
        ]));
    }
    let mut args = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ParseErrorKind::Invalid(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                super::go_quote::go_quote(word)
            )));
        };
        args.extend([key.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(SplitArgs::words(args))
}

/// HEALTHCHECK: the type word (`CMD`, `NONE`), then the command as RUN's.
pub(super) fn parse_health_config(rest: &str) -> Result<SplitArgs, ParseErrorKind> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok(SplitArgs::default());
    }
    let command = rest[sep..].trim_start();
    let mut split = parse_maybe_json(command)?;
    split.args.insert(0, rest[..sep].to_string());
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_blanks_like_go_regexp_split() {
        assert_eq!(split_blanks("a  b\tc", 0), vec!["a", "b", "c"]);
        assert_eq!(split_blanks("a  b\tc", 2), vec!["a", "b\tc"]);
        assert_eq!(split_blanks(" a ", 0), vec!["", "a", ""]);
        assert_eq!(split_blanks("a", 2), vec!["a"]);
    }

    #[test]
    fn extracts_flags_until_a_non_flag_word() {
        let (rest, flags) = extract_flags("--a=1 --b='x y' src dst", '\\');
        assert_eq!(flags, vec!["--a=1", "--b=x y"]);
        assert_eq!(rest, "src dst");
        let (rest, flags) = extract_flags("--a -- --b", '\\');
        assert_eq!(flags, vec!["--a"]);
        assert_eq!(rest.trim(), "--b");
        let (rest, flags) = extract_flags("--a --", '\\');
        assert_eq!(flags, vec!["--a"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn health_config_splits_type_from_command() {
        let split = parse_health_config("CMD   a b").unwrap();
        assert_eq!(split.args, vec!["CMD", "a b"]);
        let split = parse_health_config("CMD").unwrap();
        assert_eq!(split.args, vec!["CMD"]);
    }
}
