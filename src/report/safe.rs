//! Text from outside (process names and command lines any user sets, labels anyone with
//! engine access writes, answers of any socket portreap is pointed at) shown to people:
//! control characters and escape sequences are shown escaped, never emitted, so such text
//! can neither drive the terminal (cursor moves, OSC 52 clipboard writes, OSC 8 links) nor
//! forge lines of the output. portreap's own colours are the only escapes that reach a
//! terminal. JSON needs none of this: serde escapes what JSON requires, exactly.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as it is: C0 controls (newlines included), DEL,
/// C1 controls (U+0080..U+009F, which some terminals take as CSI and OSC), and the
/// directional formatting characters that reorder what is shown.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn escape(c: char, out: &mut String) {
    match c {
        '\x1b' => out.push_str("\\e"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `s` as one line for people: every unsafe character (newlines too) escaped.
pub fn line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Human output on its way to a terminal or a pipe, as the last guard: newlines stay, and
/// so do the colour sequences portreap writes itself (`ESC [ digits ; m`); every other
/// unsafe character is escaped as [`line`](fn@line) does.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            if let Some(len) = colour_len(rest) {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        if c != '\n' && is_unsafe(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// The length of a colour (SGR) sequence at the start of `s`: `ESC [`, digits and `;`,
/// then `m`.
fn colour_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\x1b[")?;
    let params = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';')
        .count();
    (body.as_bytes().get(params) == Some(&b'm')).then_some(2 + params + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched() {
        assert!(matches!(line("web-1 [shop/web] ünïcode"), Cow::Borrowed(_)));
        assert!(matches!(text("a\nb\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_are_shown_not_emitted() {
        assert_eq!(line("a\x1b]52;c;aGk=\x07b"), "a\\e]52;c;aGk=\\x07b");
        assert_eq!(line("x\x1b[2J\x1b[1;1H"), "x\\e[2J\\e[1;1H");
        assert_eq!(line("two\nlines\r"), "two\\nlines\\r");
        assert_eq!(line("c1 \u{9b}31m"), "c1 \\u{9b}31m");
        assert_eq!(line("del\x7f"), "del\\x7f");
        assert_eq!(line("\u{202e}txt.exe"), "\\u{202e}txt.exe");
    }

    #[test]
    fn the_last_guard_keeps_lines_and_our_colours_only() {
        assert_eq!(
            text("\x1b[31mleak   \x1b[0m ok\n\x1b]8;;http://x\x1b\\link\n"),
            "\x1b[31mleak   \x1b[0m ok\n\\e]8;;http://x\\e\\link\n"
        );
        assert_eq!(text("\x1b[2J"), "\\e[2J");
        assert_eq!(text("tab\there"), "tab\\there");
    }
}
