//! "Did you mean ...?" for unknown instructions and flags: the closest known name within an
//! edit distance of 2, as BuildKit suggests.

/// The option closest to `value` (fewer than 3 edits away), matching `value`'s case when the
/// comparison is case-insensitive. `None` when `value` is itself an option or nothing is close.
pub(super) fn suggest(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let wanted = fold(value);
    let mut best: Option<(usize, String)> = None;
    for option in options {
        let option = fold(option);
        if option == wanted {
            return None;
        }
        let distance = levenshtein(&wanted, &option);
        if distance < best.as_ref().map_or(3, |(d, _)| *d) {
            best = Some((distance, option));
        }
    }
    let (_, found) = best?;
    if case_sensitive || value != value.to_uppercase() {
        Some(found)
    } else {
        Some(found.to_uppercase())
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_in_the_callers_case() {
        let options = ["FROM", "RUN", "COPY"];
        assert_eq!(suggest("FORM", &options, false).as_deref(), Some("FROM"));
        assert_eq!(suggest("form", &options, false).as_deref(), Some("from"));
        assert_eq!(suggest("Cpoy", &options, false).as_deref(), Some("copy"));
        assert_eq!(suggest("WHATEVER", &options, false), None);
        assert_eq!(
            suggest("chwon", &["chown", "chmod"], true).as_deref(),
            Some("chown")
        );
    }
}
