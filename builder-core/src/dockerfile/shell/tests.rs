use std::collections::{BTreeMap, HashMap};

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn word(lexer: Lexer, input: &str, vars: &[(&str, &str)]) -> Result<String, ShellError> {
    lexer.process_word(input, &env(vars))
}

#[test]
fn backtick_escape_char() {
    let lexer = Lexer::new('`');
    let vars = [("PWD", "/home")];
    assert_eq!(word(lexer, "he`$PWD", &vars).unwrap(), "he$PWD");
    assert_eq!(word(lexer, "he``$PWD", &vars).unwrap(), "he`/home");
    // The backslash is an ordinary character with a backtick escape.
    assert_eq!(
        word(lexer, "C:\\dir\\$PWD", &vars).unwrap(),
        "C:\\dir\\/home"
    );
    assert_eq!(word(lexer, "a` b", &vars).unwrap(), "a b");
    assert_eq!(word(lexer, "\"a`\"b\"", &vars).unwrap(), "a\"b");
    assert_eq!(word(lexer, "\"a\\\"", &vars).unwrap(), "a\\");
    assert_eq!(word(lexer, "\"a`tb\"", &vars).unwrap(), "a`tb");
    assert_eq!(word(lexer, "hello`", &vars).unwrap(), "hello");
    assert_eq!(word(lexer, "'a`b'", &vars).unwrap(), "a`b");
    assert_eq!(
        lexer.process_words("a` b c", &env(&vars)).unwrap(),
        ["a b", "c"]
    );
}

#[test]
fn backtick_escape_in_patterns_stays_literal() {
    // Patterns always escape with `\`; a kept backtick is an ordinary character there.
    let lexer = Lexer::new('`');
    let vars = [("V", "a*b*c")];
    assert_eq!(word(lexer, "${V#*\\*}", &vars).unwrap(), "b*c");
    assert_eq!(word(lexer, "${V%`*c}", &vars).unwrap(), "a*b*c");
}

#[test]
fn nested_defaults() {
    let lexer = Lexer::default();
    let vars = [("A", ""), ("B", "b"), ("C", "c")];
    assert_eq!(
        word(lexer, "${X:-${Y:-${Z:-deep}}}", &vars).unwrap(),
        "deep"
    );
    assert_eq!(word(lexer, "${X:-${A:-${B}}}", &vars).unwrap(), "b");
    assert_eq!(word(lexer, "${X:-${A-${B}}}", &vars).unwrap(), "");
    assert_eq!(
        word(lexer, "${B:+[${C:+${B}${C}}]}", &vars).unwrap(),
        "[bc]"
    );
    assert_eq!(word(lexer, "${X:-'${B}'}", &vars).unwrap(), "${B}");
    assert_eq!(word(lexer, "${X:-\"${B}\"}", &vars).unwrap(), "b");
    assert_eq!(word(lexer, "${X:-a\\}b}", &vars).unwrap(), "a}b");
    assert_eq!(word(lexer, "${B#${A}}", &vars).unwrap(), "b");
    let (_, matches) = lexer
        .process_word_with_matches("${X:-${A:-${B}}}${C:+$Y}", &env(&vars))
        .unwrap();
    assert_eq!(
        matches.matched.into_iter().collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
    assert_eq!(
        matches.unmatched.into_iter().collect::<Vec<_>>(),
        ["X", "Y"]
    );
}

#[test]
fn unicode_words_names_and_patterns() {
    let lexer = Lexer::default();
    let vars = [("이름", "값"), ("V", "añb→c"), ("Ünï", "ok")];
    assert_eq!(word(lexer, "$이름!", &vars).unwrap(), "값!");
    assert_eq!(word(lexer, "${Ünï}", &vars).unwrap(), "ok");
    assert_eq!(word(lexer, "${V#?ñ}", &vars).unwrap(), "b→c");
    assert_eq!(word(lexer, "${V%→*}", &vars).unwrap(), "añb");
    assert_eq!(word(lexer, "${V//?/.}", &vars).unwrap(), ".....");
    // Non-decimal numbers are not name characters in Go: `²` ends the name.
    assert_eq!(word(lexer, "$V²", &vars).unwrap(), "añb→c²");
    // Unicode whitespace splits fields.
    assert_eq!(
        lexer.process_words("a\u{3000}b", &env(&vars)).unwrap(),
        ["a", "b"]
    );
}

#[test]
fn error_messages_match_buildkit() {
    let lexer = Lexer::default();
    let vars = [("V", "x"), ("E", "")];
    let message = |input: &str| word(lexer, input, &vars).unwrap_err().to_string();
    assert_eq!(
        message("a${V"),
        "failed to process \"a${V\": unsupported modifier (\u{fffd}) in substitution"
    );
    assert_eq!(
        message("${"),
        "failed to process \"${\": syntax error: missing '}'"
    );
    assert_eq!(
        message("${V:-a"),
        "failed to process \"${V:-a\": syntax error: missing '}'"
    );
    assert_eq!(
        message("${V:-'a}"),
        "failed to process \"${V:-'a}\": syntax error: missing '}'"
    );
    assert_eq!(
        message("${}"),
        "failed to process \"${}\": syntax error: bad substitution"
    );
    assert_eq!(
        message("${V/a"),
        "failed to process \"${V/a\": syntax error: missing '/' in ${}"
    );
    assert_eq!(
        message("${V=a}"),
        "failed to process \"${V=a}\": unsupported modifier (=) in substitution"
    );
    assert_eq!(
        message("${V:=a}"),
        "failed to process \"${V:=a}\": unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        message("${V:%a}"),
        "failed to process \"${V:%a}\": unsupported modifier (:%) in substitution"
    );
    assert_eq!(
        message("'a"),
        "failed to process \"'a\": unexpected end of statement while looking for matching single-quote"
    );
    assert_eq!(
        message("\"a\\\""),
        "failed to process \"\\\"a\\\\\\\"\": unexpected end of statement while looking for matching double-quote"
    );
    assert_eq!(
        message("${U?}"),
        "failed to process \"${U?}\": U: is not allowed to be unset"
    );
    assert_eq!(
        message("${E:?}"),
        "failed to process \"${E:?}\": E: is not allowed to be empty"
    );
    assert_eq!(
        message("${E:?need $V}"),
        "failed to process \"${E:?need $V}\": E: need x"
    );
    assert_eq!(
        message("${V#a\\x}"),
        "failed to process \"${V#a\\\\x}\": invalid pattern (a\\x) in substitution: invalid escape '\\x'"
    );
    // `%` matches on the reversed text, and BuildKit reports the reversed pattern.
    assert_eq!(
        message("${V%a\\x}"),
        "failed to process \"${V%a\\\\x}\": invalid pattern (\\xa) in substitution: invalid escape '\\x'"
    );
    assert_eq!(
        message("\t${}\u{1}\u{a0}"),
        "failed to process \"\\t${}\\x01\\u00a0\": syntax error: bad substitution"
    );
}

#[test]
fn raw_quotes_keep_quote_characters() {
    let lexer = Lexer::default().raw_quotes(true);
    let vars = [("V", "a b")];
    assert_eq!(word(lexer, "'$V' \"$V\"", &vars).unwrap(), "'$V' \"a b\"");
    assert_eq!(
        lexer
            .process_words("x='a b' \"$V\" $V", &env(&vars))
            .unwrap(),
        ["x='a b'", "\"a b\"", "a", "b"]
    );
}

#[test]
fn raw_escapes_keep_escape_characters() {
    let lexer = Lexer::default().raw_escapes(true);
    assert_eq!(word(lexer, "a\\ b\\$V", &[]).unwrap(), "a\\ b\\$V");
    // Inside double quotes, an escape before an ordinary character is kept twice.
    assert_eq!(word(lexer, "\"\\$\\t\"", &[]).unwrap(), "\\$\\\\t");
}

#[test]
fn skip_unset_env_leaves_references() {
    let lexer = Lexer::default().skip_unset_env(true);
    let vars = [("SET", "s")];
    assert_eq!(word(lexer, "$U ${U} $SET", &vars).unwrap(), "$U ${U} s");
    assert_eq!(word(lexer, "${U:-${SET}}", &vars).unwrap(), "${U:-s}");
    assert_eq!(word(lexer, "${U:=x}", &vars).unwrap(), "${U:=x}");
    assert_eq!(word(lexer, "${U//a/b}", &vars).unwrap(), "${U/a/b}");
    assert_eq!(word(lexer, "${U?}", &vars).unwrap(), "${U?}");
    assert_eq!(word(lexer, "${SET:-x}", &vars).unwrap(), "s");
}

#[test]
fn skip_process_quotes_treats_quotes_as_text() {
    let lexer = Lexer::default().skip_process_quotes(true);
    let vars = [("V", "v")];
    assert_eq!(word(lexer, "'$V' \"$V\"", &vars).unwrap(), "'v' \"v\"");
    assert_eq!(word(lexer, "it's", &vars).unwrap(), "it's");
}

#[test]
fn heredoc_markers_keep_their_blanks() {
    let lexer = Lexer::default();
    assert_eq!(
        lexer.process_words("cat << EOF >out", &env(&[])).unwrap(),
        ["cat", "<< EOF", ">out"]
    );
    assert_eq!(lexer.process_words("a <b", &env(&[])).unwrap(), ["a", "<b"]);
}

#[test]
fn words_keep_text_before_modifiers() {
    let lexer = Lexer::default();
    let vars = [("L", "x y")];
    assert_eq!(
        lexer
            .process_words("a${X:-b} c\"${X:-d}\"", &env(&vars))
            .unwrap(),
        ["ab", "cd"]
    );
    assert_eq!(
        lexer.process_words("p${L:+$L}q", &env(&vars)).unwrap(),
        ["px", "yq"]
    );
}

#[test]
fn special_and_positional_parameters() {
    let lexer = Lexer::default();
    let vars = [("1", "one"), ("@", "at")];
    // Looked up like any name, so an environment could define them; Dockerfiles cannot.
    assert_eq!(word(lexer, "$1$12 ${@}$", &vars).unwrap(), "one at$");
    assert_eq!(word(lexer, "$#x", &[]).unwrap(), "x");
}

#[test]
fn leading_bom_is_dropped() {
    assert_eq!(
        word(Lexer::default(), "\u{feff}a\u{feff}", &[]).unwrap(),
        "a\u{feff}"
    );
}

#[test]
fn lookups_for_each_env_kind() {
    let list = env(&[("A", "1"), ("A", "2")]);
    assert_eq!(list.lookup("A"), Some("2"));
    assert_eq!(list.as_slice().lookup("A"), Some("2"));
    assert_eq!(list.lookup("B"), None);
    let tree: BTreeMap<String, String> = list.iter().cloned().collect();
    assert_eq!(tree.lookup("A"), Some("2"));
    let hash: HashMap<String, String> = list.iter().cloned().collect();
    assert_eq!(hash.lookup("A"), Some("2"));
    assert_eq!(Lexer::default().process_word("$A", &&hash).unwrap(), "2");
}
