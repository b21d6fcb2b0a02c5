//! Field splitting for `process_words`.

/// Builds the fields of a word as its pieces come in.
///
/// Unquoted text and unquoted expansions are *splittable*: whitespace in them ends the current
/// field. Quoted text, escaped characters and heredoc markers are *literal*: they extend the
/// current field whatever they contain. Empty fields are never produced.
#[derive(Debug, Default)]
pub(super) struct Fields {
    done: Vec<String>,
    current: String,
}

impl Fields {
    pub(super) fn push_splittable(&mut self, text: &str) {
        for ch in text.chars() {
            self.push_splittable_char(ch);
        }
    }

    pub(super) fn push_splittable_char(&mut self, ch: char) {
        // Go's `unicode.IsSpace` and Rust's `char::is_whitespace` are the same set.
        if ch.is_whitespace() {
            self.end_field();
        } else {
            self.current.push(ch);
        }
    }

    pub(super) fn push_literal(&mut self, text: &str) {
        self.current.push_str(text);
    }

    pub(super) fn push_literal_char(&mut self, ch: char) {
        self.current.push(ch);
    }

    fn end_field(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    pub(super) fn finish(mut self) -> Vec<String> {
        self.end_field();
        self.done
    }
}
