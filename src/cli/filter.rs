//! The BPF filter expression as tcpdump takes it: the words of the command line that are not
//! options (or everything after `--`), or the text of `-F FILE`, never both.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// The filter expression: the command-line `words` joined by spaces, or the text of `file`
/// (tcpdump's `-F`). `None` when neither gives one. Both at once is an error, not a guess.
pub fn expression(words: &[String], file: Option<&Path>) -> Result<Option<String>> {
    let given = words.join(" ");
    let given = given.trim();
    match file {
        Some(path) => {
            if !given.is_empty() {
                bail!(
                    "a filter expression is given twice: by -F {} and on the command line \
                     ({given:?}); keep one",
                    path.display()
                );
            }
            read_filter_file(path).map(Some)
        }
        None => Ok((!given.is_empty()).then(|| given.to_string())),
    }
}

/// The expression in a `-F` file, on one line: `#` starts a comment to the end of the line (as
/// tcpdump strips them), lines are joined by spaces. A file with no expression is an error: a
/// capture that silently takes every packet is not what a filter file asks for.
pub fn read_filter_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("-F {}: cannot read the filter file", path.display()))?;
    let expression = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if expression.is_empty() {
        bail!(
            "-F {}: the filter file holds no expression (only blanks or # comments)",
            path.display()
        );
    }
    Ok(expression)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn words_are_joined_and_empty_is_none() {
        assert_eq!(
            expression(&words("tcp port 443"), None).unwrap().as_deref(),
            Some("tcp port 443")
        );
        assert_eq!(expression(&[], None).unwrap(), None);
    }

    #[test]
    fn a_filter_file_drops_comments_and_joins_lines() {
        let path = std::env::temp_dir().join(format!("dg-audit-bpf-{}.txt", std::process::id()));
        std::fs::write(
            &path,
            "# licensing only\ntcp port 443   # TLS\n  or udp port 53\n",
        )
        .unwrap();
        assert_eq!(
            expression(&[], Some(&path)).unwrap().as_deref(),
            Some("tcp port 443 or udp port 53")
        );
        let err = expression(&words("icmp"), Some(&path)).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
        std::fs::write(&path, "# nothing\n\n").unwrap();
        let err = expression(&[], Some(&path)).unwrap_err();
        assert!(err.to_string().contains("no expression"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
