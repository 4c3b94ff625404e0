//! `--color auto|always|never` and NO_COLOR (<https://no-color.org>): one decision, used by the
//! analyze verdict text and the log lines alike.

use clap::ValueEnum;

/// When to write ANSI colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set to a non-empty value.
    #[default]
    Auto,
    /// Colour everywhere, even into a pipe or a file, and whatever NO_COLOR says.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream that is (`terminal`) or is not a terminal, with NO_COLOR as
    /// the process environment has it.
    pub fn paints(self, terminal: bool) -> bool {
        self.paints_with(terminal, std::env::var_os("NO_COLOR").as_deref())
    }

    /// [`Self::paints`] with NO_COLOR given: set to an empty value counts as unset.
    pub fn paints_with(self, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn auto_paints_terminals_unless_no_color_is_non_empty() {
        let auto = ColorChoice::Auto;
        assert!(auto.paints_with(true, None));
        assert!(!auto.paints_with(false, None));
        assert!(!auto.paints_with(true, Some(OsStr::new("1"))));
        assert!(auto.paints_with(true, Some(OsStr::new(""))));
        assert!(ColorChoice::Always.paints_with(false, Some(OsStr::new("1"))));
        assert!(!ColorChoice::Never.paints_with(true, None));
    }
}
