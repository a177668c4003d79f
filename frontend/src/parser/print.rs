//! Printing an [`Ast`] back to Dockerfile text: directives, then each
//! instruction's comments, its logical line and its heredoc bodies. Parsing the
//! output gives the same instructions (spans aside, since continuations are
//! joined and blank lines dropped).

use std::fmt;

use super::Ast;
use super::lines::trim_continuation;

impl fmt::Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.directives {
            writeln!(f, "# {}={}", d.name, d.value)?;
        }
        // A blank line ends the directive block, so no comment below can be
        // taken for a directive.
        writeln!(f)?;
        for node in &self.nodes {
            for c in &node.comments {
                writeln!(f, "# {c}")?;
            }
            let (_, ends) = trim_continuation(&node.original, self.escape);
            if node.original.is_empty() || !ends {
                // Only a continuation running into the end of the file gives
                // an empty line or one ending in the escape character (always
                // the last instruction); print it the same way.
                writeln!(f, "{} {}", node.original, self.escape)?;
            } else {
                writeln!(f, "{}", node.original)?;
            }
            for doc in &node.heredocs {
                write!(f, "{}", doc.content)?;
                writeln!(f, "{}", doc.name)?;
            }
        }
        Ok(())
    }
}
