//! The jobs' `user` and `group` resolved on this machine, once, when the
//! schema is loaded (`jobslot run` start, `jobslot schema check`): the
//! instance keeps the result ([`Identities`]) and a spawn only looks its job
//! up there. A job with no `user` is not in it and costs nothing.

use crate::runner::{RunAs, resolve_identity};
use crate::schema::{SchemaError, SchemaErrors, SchemaSet};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The credentials of each job that switches user, by job name.
pub type Identities = BTreeMap<String, Arc<RunAs>>;

/// Resolves every job's `user` and `group` on this machine. Errors name the
/// file, line and key: a user or group that does not exist here, or one that
/// is not jobslot's own while jobslot is not root. Jobs that name jobslot's
/// own user while it is not root need no switch and are left out.
pub fn resolve_identities(schema: &SchemaSet) -> Result<Identities, SchemaErrors> {
    let mut out = Identities::new();
    let mut errors = Vec::new();
    // Several jobs often share a user: one lookup each.
    let mut seen: HashMap<(&str, Option<&str>), Option<Arc<RunAs>>> = HashMap::new();
    for (name, job) in &schema.jobs {
        let Some(user) = job.user.as_deref() else {
            continue;
        };
        let group = job.group.as_deref();
        let resolved = match seen.get(&(user, group)) {
            Some(done) => Ok(done.clone()),
            None => resolve_identity(user, group).map(|r| r.map(Arc::new)),
        };
        match resolved {
            Ok(run_as) => {
                seen.insert((user, group), run_as.clone());
                if let Some(run_as) = run_as {
                    out.insert(name.clone(), run_as);
                }
            }
            Err(e) => {
                let keys = schema.identity_keys.get(name);
                let place = match e.is_about_group() {
                    true => keys.and_then(|k| k.group.as_ref()),
                    false => keys.and_then(|k| k.user.as_ref()),
                };
                errors.push(match place {
                    Some(place) => place.error(e.to_string()),
                    None => SchemaError::in_file("schema", format!("job {name:?}: {e}")),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(SchemaErrors(errors))
    }
}
