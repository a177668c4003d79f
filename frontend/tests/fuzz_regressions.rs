//! Inputs the fuzzer (frontend/fuzz) found; each must keep passing the check it
//! once failed.

/// Printing a parsed file and parsing it again gives the same instructions.
fn round_trips(text: &str) {
    if let Ok(ast) = buildd_frontend::parse(text) {
        let printed = ast.to_string();
        let again = buildd_frontend::parse(&printed)
            .unwrap_or_else(|e| panic!("printed AST does not parse: {e}\n{printed:?}"));
        assert_eq!(again.dump(), ast.dump(), "printed: {printed:?}");
    }
}

/// Only spaces and tabs may follow an escape that continues a line, so
/// `\` + vertical tab is a whole instruction; printing must not turn it into a
/// continuation that swallows the next line.
#[test]
fn escape_then_vertical_tab_is_not_a_continuation() {
    round_trips("\\\u{b}\n\0");
}

/// A carriage return before a final escape is trimmed like the line reader
/// trims it, so the printed line continues exactly as the original did.
#[test]
fn carriage_return_before_a_final_escape() {
    round_trips("t\u{1d}\\\r\\");
}
