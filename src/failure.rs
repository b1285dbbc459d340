//! The one failure a command ends with, and its exit status, decided here and nowhere else.
//!
//! Operations fail with typed errors (`anyhow` chains whose causes are this crate's error
//! types); `cli::run` turns the error into a `Failure` once, at the boundary, and `main` prints
//! it and exits with its code. What makes a failure bad input is a type, never a message:
//! [`BadInput`], a lab file that does not validate (`ModelError`), a node the user named that the
//! lab does not have (`RenderError::NoSuchNode`), an image name or file that is not one
//! (`ImageError::{UnknownRecipe, NotFound, BadName, NotAnImage, Refused}`), and the refusals of
//! the operations' own error enums, each saying which of its variants are bad input
//! (`UpError`, `RevertError`, `InstallError`: `is_bad_input`; every `RemoveError`). An internal invariant that did
//! not hold (`RenderError::Invariant`) is a failure, not bad input.

use crate::ops::lab::dcos::InstallError;
use crate::ops::lab::removal::RemoveError;
use crate::ops::lab::snapshots::RevertError;
use crate::ops::up::UpError;
use crate::{image, model, render};

/// Exit status for bad input (an invalid lab file, an unknown node, bad arguments).
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit status for any other failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status after Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

/// The command was interrupted (SIGINT); the message says what it left and how to go on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// The user's input is wrong (exit 2) rather than the command failing (exit 1); the message
/// names the file, field or name and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// How a command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The user's input is wrong; nothing was changed on the host.
    BadInput,
    /// Stopped by Ctrl-C.
    Interrupted,
    /// Anything else.
    Failed,
}

/// A command's failure: its kind and the error, with its causes.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub error: anyhow::Error,
}

impl Failure {
    /// The exit status of the command.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::BadInput => EXIT_BAD_INPUT,
            Kind::Interrupted => EXIT_INTERRUPTED,
            Kind::Failed => EXIT_FAILURE,
        }
    }

    /// What to print: the error and each cause once.
    pub fn message(&self) -> String {
        crate::error_chain(self.error.as_ref())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure {
            kind: kind_of(&error),
            error,
        }
    }
}

/// The kind of an error, from the types of its causes.
pub fn kind_of(error: &anyhow::Error) -> Kind {
    if error.chain().any(|e| e.is::<Interrupted>()) {
        return Kind::Interrupted;
    }
    let bad = error.chain().any(|e| {
        e.is::<BadInput>()
            || e.is::<model::ModelError>()
            || e.downcast_ref::<InstallError>()
                .is_some_and(InstallError::is_bad_input)
            || e.downcast_ref::<UpError>()
                .is_some_and(UpError::is_bad_input)
            || e.downcast_ref::<RevertError>()
                .is_some_and(RevertError::is_bad_input)
            || e.is::<RemoveError>()
            || matches!(
                e.downcast_ref::<render::RenderError>(),
                Some(render::RenderError::NoSuchNode { .. })
            )
            || matches!(
                e.downcast_ref::<image::ImageError>(),
                Some(
                    image::ImageError::UnknownRecipe { .. }
                        | image::ImageError::NotFound { .. }
                        | image::ImageError::BadName { .. }
                        | image::ImageError::NotAnImage { .. }
                        | image::ImageError::Refused { .. }
                )
            )
    });
    if bad { Kind::BadInput } else { Kind::Failed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_types_anywhere_in_the_chain() {
        let bad = anyhow::Error::new(BadInput("no such lab".into())).context("cannot go on");
        assert_eq!(Failure::from(bad).exit_code(), EXIT_BAD_INPUT);
        let int = anyhow::Error::new(Interrupted("stopped".into()));
        assert_eq!(Failure::from(int).exit_code(), EXIT_INTERRUPTED);
        let node = anyhow::Error::new(render::RenderError::NoSuchNode { node: "x".into() });
        assert_eq!(Failure::from(node).kind, Kind::BadInput);
        // A broken invariant is ours, not the user's.
        let inv = anyhow::Error::new(render::RenderError::Invariant("a plan has both networks"));
        assert_eq!(Failure::from(inv).kind, Kind::Failed);
        // The words of a message decide nothing.
        let words = anyhow::anyhow!("bad input: fix: the lab file");
        assert_eq!(Failure::from(words).exit_code(), EXIT_FAILURE);
    }
}
