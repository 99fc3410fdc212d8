//! `[[diseases]]`: groups of diseases (病种) that rules select by `when.disease`.

use std::sync::Arc;

use onestop_core::claim::{DISEASE_CODE_MAX, is_disease_code};
use onestop_core::policy::{DISEASE_CODES_MAX, DISEASE_GROUPS_MAX, DiseaseGroup, Selector};

use crate::error::{PolicyError, PolicyErrorCode};
use crate::read::{Reader, Table};
use crate::tree::Node;

const GROUP_KEYS: &[&str] = &["id", "name", "codes", "notes"];

/// Reads the groups; their ids are left in `reader.diseases` for the selectors that follow.
pub fn diseases(
    reader: &mut Reader,
    node: &Node,
    path: &str,
) -> Result<Vec<DiseaseGroup>, PolicyError> {
    let entries = reader.tables(node, path)?;
    if entries.len() > DISEASE_GROUPS_MAX {
        let message = format!("{} disease groups; at most {DISEASE_GROUPS_MAX}", entries.len());
        return Err(reader.error(PolicyErrorCode::LimitExceeded, node, path, message));
    }
    let mut groups: Vec<DiseaseGroup> = Vec::with_capacity(entries.len());
    // Every code read so far, with the group that has it.
    let mut seen: std::collections::HashMap<Arc<str>, Arc<str>> = std::collections::HashMap::new();
    for (entry, entry_path) in entries {
        let mut table = Table::open(reader, entry, &entry_path, GROUP_KEYS)?;
        table.get("notes");
        let (id_node, id_path) = table.require(reader, "id", "the group's id")?;
        let id: Arc<str> = Arc::from(group_id(reader, id_node, &id_path)?);
        if groups.iter().any(|g| g.id == id) {
            let message = format!("`{id}` names another group already");
            return Err(reader.invalid(id_node, &id_path, message));
        }
        let name = match table.get("name") {
            Some((node, path)) => reader.text(node, &path)?.to_owned(),
            None => id.to_string(),
        };
        let (codes_node, codes_path) =
            table.require(reader, "codes", "the group's disease codes")?;
        let mut codes = Vec::new();
        for (item, item_path) in reader.one_or_many(codes_node, &codes_path) {
            let code = disease_code(reader, item, &item_path)?;
            if let Some(other) = seen.insert(Arc::clone(&code), Arc::clone(&id)) {
                // A code in two groups would let two rules of a tier apply to one bill.
                let message = if other == id {
                    format!("disease `{code}` is listed twice in this group")
                } else {
                    format!("disease `{code}` is in group `{other}` already")
                };
                return Err(reader.invalid(item, &item_path, message));
            }
            codes.push(code);
        }
        if codes.is_empty() {
            let message = "an empty list matches nothing".to_owned();
            return Err(reader.invalid(codes_node, &codes_path, message));
        }
        if seen.len() > DISEASE_CODES_MAX {
            let message = format!("more than {DISEASE_CODES_MAX} disease codes");
            return Err(reader.error(
                PolicyErrorCode::LimitExceeded,
                codes_node,
                &codes_path,
                message,
            ));
        }
        codes.sort_unstable();
        let source = reader.source(entry, &entry_path);
        groups.push(DiseaseGroup { id, name, codes, source });
    }
    reader.diseases = groups.iter().map(|g| Arc::clone(&g.id)).collect();
    Ok(groups)
}

/// A disease code, in upper case: codes are compared without regard to letter case (`I10.x00`
/// is `I10.X00`).
fn disease_code(reader: &Reader, node: &Node, path: &str) -> Result<Arc<str>, PolicyError> {
    let code = reader.text(node, path)?;
    if !is_disease_code(code) {
        let message = format!(
            "`{code}` is not a disease code: 1 to {DISEASE_CODE_MAX} of letters, digits, `.`, `-` \
             and `_`"
        );
        return Err(reader.invalid(node, path, message));
    }
    Ok(Arc::from(code.to_ascii_uppercase()))
}

/// A group's id: as a pool's, and not `none`.
fn group_id(reader: &Reader, node: &Node, path: &str) -> Result<String, PolicyError> {
    let id = reader.text(node, path)?;
    let ok = !id.is_empty()
        && id.len() <= 32
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        let message = format!("a disease group id `{id}` must be 1 to 32 of a-z, 0-9 and _");
        return Err(reader.invalid(node, path, message));
    }
    if id == "none" {
        let message = "`none` selects bills of no group in `when.disease`: name the group \
            otherwise"
            .to_owned();
        return Err(reader.invalid(node, path, message));
    }
    Ok(id.to_owned())
}

/// `when.disease`: group ids, or `none` for bills of no group.
pub fn disease_bits(reader: &Reader, node: &Node, path: &str) -> Result<u64, PolicyError> {
    let expected = if reader.diseases.is_empty() {
        "none (this file has no [[diseases]] groups)".to_owned()
    } else {
        let ids: Vec<&str> = reader.diseases.iter().map(|id| &**id).collect();
        format!("none, {}", ids.join(", "))
    };
    let parse = |text: &str| match text {
        "none" => Some(Selector::NO_DISEASE),
        id => reader.diseases.iter().position(|g| &**g == id).map(|index| 1 << index),
    };
    let mut bits = 0;
    for (item, item_path) in reader.one_or_many(node, path) {
        bits |= reader.name(item, &item_path, parse, &expected)?;
    }
    if bits == 0 {
        return Err(reader.invalid(node, path, "an empty list matches nothing".to_owned()));
    }
    Ok(bits)
}
