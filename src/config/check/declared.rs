//! The refusals of the file's own declarations (`validator` on the shapes of `file.rs`), as
//! problems keyed as the file spells them, each in a sentence.

use validator::{ValidationError, ValidationErrors, ValidationErrorsKind};

use crate::config::Problem;

/// The refusals of the file's declarations, keyed as the file spells them (`graph.concurrency`,
/// `targets[3].user_id`), in a stable order (sections by name, targets by index).
pub(super) fn declared(errors: &ValidationErrors) -> Vec<Problem> {
    fn walk(errors: &ValidationErrors, prefix: &str, out: &mut Vec<(String, Problem)>) {
        for (field, kind) in errors.errors() {
            let key = if prefix.is_empty() {
                field.to_string()
            } else {
                format!("{prefix}.{field}")
            };
            match kind {
                ValidationErrorsKind::Field(list) => out.extend(list.iter().map(|e| {
                    (
                        key.clone(),
                        Problem {
                            key: key.clone(),
                            message: sentence(e),
                        },
                    )
                })),
                ValidationErrorsKind::Struct(inner) => walk(inner, &key, out),
                ValidationErrorsKind::List(items) => {
                    for (i, inner) in items {
                        walk(inner, &format!("{key}[{i}]"), out)
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(errors, "", &mut found);
    // Indices zero-padded for the order only: targets[2] before targets[10].
    let order = |key: &str| {
        key.split(['[', ']'])
            .map(|part| match part.parse::<u64>() {
                Ok(n) => format!("{n:020}"),
                Err(_) => part.to_string(),
            })
            .collect::<Vec<_>>()
    };
    found.sort_by_key(|(key, _)| order(key));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The sentence of one refusal: "`value` is not in `min..=max`" (and why, when the declaration
/// says) for a range; the declaration's own sentence otherwise.
fn sentence(e: &ValidationError) -> String {
    let param = |name: &str| e.params.get(name).map(ToString::to_string);
    match (e.code.as_ref(), param("value"), param("min"), param("max")) {
        ("range", Some(value), Some(min), Some(max)) => {
            let why = e
                .message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            format!("{value} is not in {min}..={max}{why}")
        }
        _ => e
            .message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| format!("is refused ({})", e.code)),
    }
}
