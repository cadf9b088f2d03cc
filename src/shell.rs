//! Quoting for the commands portreap suggests: text from labels, paths and engines is
//! data, so a suggestion pasted into a shell runs exactly what it shows.

/// `s` as one POSIX shell word: unchanged when it holds only characters no shell treats
/// specially, else in single quotes (a `'` inside becomes `'\''`).
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'.' | b'_' | b'-' | b':' | b'@' | b'=' | b',' | b'+'
                )
        });
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn words_that_need_no_quotes_keep_none() {
        assert_eq!(
            quote("unix:///run/x/docker.sock"),
            "unix:///run/x/docker.sock"
        );
        assert_eq!(quote("web-1"), "web-1");
    }

    #[test]
    fn everything_else_is_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("x;touch /tmp/p"), "'x;touch /tmp/p'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(id)"), "'$(id)'");
    }
}
