//! Who may use the cluster, as the meta group applies it: tenants and the hashes of their
//! API keys (created, revoked, rotated), their quotas, and the hash of the admin token that
//! administration calls must present (set once at bootstrap, then only replaced by an
//! admin).

use crate::command::{MetaCommand, MetaError, MetaReply, invalid};
use crate::map::ShardMap;
use crate::tenant::{KeyHash, MAX_KEYS_PER_TENANT, Tenant, TenantId, check_name};

impl ShardMap {
    /// Applies one of the access commands (tenants, keys, quotas, the admin token) at log
    /// `index`; any other command is refused as invalid.
    pub(crate) fn apply_access(
        &mut self,
        index: u64,
        command: MetaCommand,
    ) -> Result<MetaReply, MetaError> {
        match command {
            MetaCommand::AddTenantKey { name, key_hash } => {
                let tenant = self.add_tenant_key(index, name, key_hash)?;
                return Ok(MetaReply::TenantKey {
                    tenant,
                    version: self.version,
                });
            }
            MetaCommand::ReplaceTenantKeys { name, key_hash } => {
                let tenant = self.existing_tenant(&name)?;
                if let Some(owner) = self.tenant_of(&key_hash).filter(|o| *o != tenant) {
                    return Err(MetaError::KeyInUse(owner));
                }
                let keys = &mut self.tenant_mut(tenant)?.key_hashes;
                if *keys != [key_hash] {
                    *keys = vec![key_hash];
                    self.version = index;
                }
                return Ok(MetaReply::TenantKey {
                    tenant,
                    version: self.version,
                });
            }
            MetaCommand::RevokeTenantKey { name, key_hash } => {
                let tenant = self.existing_tenant(&name)?;
                let keys = &mut self.tenant_mut(tenant)?.key_hashes;
                let before = keys.len();
                keys.retain(|k| *k != key_hash);
                if keys.len() == before {
                    return Err(MetaError::UnknownKey { name });
                }
                self.version = index;
            }
            MetaCommand::SetTenantQuota { name, max_locks } => {
                let tenant = self.existing_tenant(&name)?;
                let quota = &mut self.tenant_mut(tenant)?.max_locks;
                if *quota != max_locks {
                    *quota = max_locks;
                    self.version = index;
                }
            }
            MetaCommand::SetAdminToken {
                token_hash,
                bootstrap,
            } => {
                if bootstrap && self.admin_token_hash.is_some_and(|h| h != token_hash) {
                    return Err(MetaError::AdminTokenSet);
                }
                if self.admin_token_hash != Some(token_hash) {
                    self.admin_token_hash = Some(token_hash);
                    self.version = index;
                }
            }
            other => {
                return Err(invalid(
                    "command",
                    format!("{other:?} is not an access command"),
                ));
            }
        }
        Ok(MetaReply::Done {
            version: self.version,
        })
    }

    /// True when `token_hash` is the hash of the cluster's admin token.
    pub fn is_admin(&self, token_hash: &KeyHash) -> bool {
        self.admin_token_hash.as_ref() == Some(token_hash)
    }

    fn existing_tenant(&self, name: &str) -> Result<TenantId, MetaError> {
        self.tenant_named(name)
            .ok_or_else(|| invalid("tenant name", format!("no tenant is named {name}")))
    }

    fn tenant_mut(&mut self, id: TenantId) -> Result<&mut Tenant, MetaError> {
        self.tenants.get_mut(&id).ok_or(MetaError::NotInitialized)
    }

    fn add_tenant_key(
        &mut self,
        index: u64,
        name: String,
        key_hash: KeyHash,
    ) -> Result<TenantId, MetaError> {
        check_name(&name).map_err(|problem| invalid("tenant name", problem))?;
        let existing = self.tenant_named(&name);
        if let Some(owner) = self.tenant_of(&key_hash) {
            return if Some(owner) == existing {
                Ok(owner)
            } else {
                Err(MetaError::KeyInUse(owner))
            };
        }
        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.tenants.keys().next_back().map_or(1, |last| last + 1);
                let tenant = Tenant {
                    name: name.clone(),
                    key_hashes: Vec::new(),
                    max_locks: None,
                };
                self.tenants.insert(id, tenant);
                id
            }
        };
        let tenant = self.tenant_mut(id)?;
        if tenant.key_hashes.len() >= MAX_KEYS_PER_TENANT {
            return Err(MetaError::TooManyKeys { name });
        }
        tenant.key_hashes.push(key_hash);
        self.version = index;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tests::initialized;
    use crate::tenant::key_hash;

    #[test]
    fn a_tenant_quota_is_set_and_lifted_by_name() {
        let mut map = initialized();
        let add = MetaCommand::AddTenantKey {
            name: "dev".into(),
            key_hash: crate::tenant::key_hash("k1"),
        };
        map.apply(10, add).unwrap();
        let set = |max_locks| MetaCommand::SetTenantQuota {
            name: "dev".into(),
            max_locks,
        };
        assert_eq!(
            map.apply(11, set(Some(500))),
            Ok(MetaReply::Done { version: 11 })
        );
        assert_eq!(map.tenants[&1].max_locks, Some(500));
        assert_eq!(
            map.apply(12, set(Some(500))),
            Ok(MetaReply::Done { version: 11 }),
            "the same quota again changes nothing"
        );
        assert_eq!(
            map.apply(13, set(None)),
            Ok(MetaReply::Done { version: 13 })
        );
        assert_eq!(map.tenants[&1].max_locks, None);
        let unknown = MetaCommand::SetTenantQuota {
            name: "nobody".into(),
            max_locks: Some(1),
        };
        assert!(matches!(
            map.apply(14, unknown),
            Err(MetaError::Invalid { .. })
        ));
    }

    #[test]
    fn tenants_get_ids_and_keys_once() {
        let mut map = initialized();
        let add = |name: &str, key: &str| MetaCommand::AddTenantKey {
            name: name.into(),
            key_hash: crate::tenant::key_hash(key),
        };
        let first = map.apply(10, add("dev", "k1")).unwrap();
        assert_eq!(
            first,
            MetaReply::TenantKey {
                tenant: 1,
                version: 10
            }
        );
        assert_eq!(
            map.apply(11, add("dev", "k1")).unwrap(),
            MetaReply::TenantKey {
                tenant: 1,
                version: 10
            },
            "the same key again is a no-op"
        );
        assert_eq!(
            map.apply(12, add("dev", "k2")).unwrap(),
            MetaReply::TenantKey {
                tenant: 1,
                version: 12
            }
        );
        assert_eq!(
            map.apply(13, add("team-b", "k3")).unwrap(),
            MetaReply::TenantKey {
                tenant: 2,
                version: 13
            }
        );
        assert_eq!(
            map.apply(14, add("team-b", "k1")),
            Err(MetaError::KeyInUse(1))
        );
        assert_eq!(map.tenant_of(&crate::tenant::key_hash("k2")), Some(1));
        assert_eq!(map.tenant_of(&crate::tenant::key_hash("nope")), None);
        assert!(matches!(
            map.apply(15, add("Bad Name", "k9")),
            Err(MetaError::Invalid { .. })
        ));
        for i in 0..(MAX_KEYS_PER_TENANT - 2) {
            map.apply(20 + i as u64, add("dev", &format!("more-{i}")))
                .unwrap();
        }
        assert!(matches!(
            map.apply(99, add("dev", "one-too-many")),
            Err(MetaError::TooManyKeys { .. })
        ));
    }

    #[test]
    fn keys_are_revoked_and_rotated_by_hash() {
        let mut map = initialized();
        let add = |key: &str| MetaCommand::AddTenantKey {
            name: "dev".into(),
            key_hash: key_hash(key),
        };
        map.apply(10, add("k1")).unwrap();
        map.apply(11, add("k2")).unwrap();
        let revoke = |key: &str| MetaCommand::RevokeTenantKey {
            name: "dev".into(),
            key_hash: key_hash(key),
        };
        assert_eq!(
            map.apply(12, revoke("k1")),
            Ok(MetaReply::Done { version: 12 })
        );
        assert_eq!(
            map.tenant_of(&key_hash("k1")),
            None,
            "a revoked key acts as no one"
        );
        assert_eq!(map.tenant_of(&key_hash("k2")), Some(1));
        assert_eq!(
            map.apply(13, revoke("k1")),
            Err(MetaError::UnknownKey { name: "dev".into() })
        );
        let rotate = MetaCommand::ReplaceTenantKeys {
            name: "dev".into(),
            key_hash: key_hash("k3"),
        };
        assert_eq!(
            map.apply(14, rotate.clone()),
            Ok(MetaReply::TenantKey {
                tenant: 1,
                version: 14
            })
        );
        assert_eq!(map.tenants[&1].key_hashes, vec![key_hash("k3")]);
        assert_eq!(
            map.apply(15, rotate),
            Ok(MetaReply::TenantKey {
                tenant: 1,
                version: 14
            }),
            "the same rotation again changes nothing"
        );
        map.apply(
            16,
            MetaCommand::AddTenantKey {
                name: "other".into(),
                key_hash: key_hash("o"),
            },
        )
        .unwrap();
        assert_eq!(
            map.apply(
                17,
                MetaCommand::ReplaceTenantKeys {
                    name: "dev".into(),
                    key_hash: key_hash("o")
                }
            ),
            Err(MetaError::KeyInUse(2))
        );
        assert!(matches!(
            map.apply(
                18,
                MetaCommand::RevokeTenantKey {
                    name: "nobody".into(),
                    key_hash: key_hash("k3")
                }
            ),
            Err(MetaError::Invalid { .. })
        ));
    }

    #[test]
    fn the_admin_token_is_set_once_then_only_replaced() {
        let mut map = initialized();
        assert!(!map.is_admin(&key_hash("t1")));
        let set = |token: &str, bootstrap| MetaCommand::SetAdminToken {
            token_hash: key_hash(token),
            bootstrap,
        };
        assert_eq!(
            map.apply(10, set("t1", true)),
            Ok(MetaReply::Done { version: 10 })
        );
        assert!(map.is_admin(&key_hash("t1")));
        assert_eq!(
            map.apply(11, set("t1", true)),
            Ok(MetaReply::Done { version: 10 }),
            "a retried bootstrap with the same token is a no-op"
        );
        assert_eq!(
            map.apply(12, set("t2", true)),
            Err(MetaError::AdminTokenSet)
        );
        assert!(map.is_admin(&key_hash("t1")));
        assert_eq!(
            map.apply(13, set("t2", false)),
            Ok(MetaReply::Done { version: 13 })
        );
        assert!(map.is_admin(&key_hash("t2")) && !map.is_admin(&key_hash("t1")));
        assert_eq!(
            ShardMap::default().apply(1, set("t", true)),
            Err(MetaError::NotInitialized)
        );
    }
}
