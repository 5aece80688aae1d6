//! Reference data: the material and partner lists, versioned under `schemas/reference/`.
//!
//! The lists are compiled into the binary so the domain core needs no file access; the
//! versions they carry are written into the genesis record, so the log names the lists it
//! was decided against.

use super::ids::{Country, MaterialId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

const MATERIALS_JSON: &str = include_str!("../../../schemas/reference/materials.v1.json");
const PARTNERS_JSON: &str = include_str!("../../../schemas/reference/partners.v1.json");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Material {
    pub id: MaterialId,
    pub name: String,
    /// CRMA Annex I.
    pub crma_strategic: bool,
    /// CRMA Annex II.
    pub crma_critical: bool,
    /// NATO defence-critical raw materials list; `None` where the list is ambiguous.
    pub nato_defence_critical: Option<bool>,
    pub typical_unit: super::quantity::Unit,
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    /// ISO 3166-1 alpha-2 (`GR` for Greece).
    pub code: Country,
    /// The code on Commission output (`EL` for Greece, `UK` for the United Kingdom).
    pub eu_code: String,
    pub name: String,
    pub eu: bool,
    pub iea: bool,
    pub nato: bool,
}

#[derive(Debug, Deserialize)]
struct MaterialsFile {
    version: String,
    materials: Vec<Material>,
}

#[derive(Debug, Deserialize)]
struct PartnersFile {
    version: String,
    partners: Vec<Partner>,
}

/// The reference lists this build decides against.
#[derive(Debug)]
pub struct Reference {
    pub materials_version: String,
    pub partners_version: String,
    materials: BTreeMap<MaterialId, Material>,
    partners: BTreeMap<Country, Partner>,
}

impl Reference {
    /// The compiled-in lists. Parsed once; a malformed list is a build defect caught by tests.
    pub fn get() -> &'static Reference {
        static REFERENCE: OnceLock<Reference> = OnceLock::new();
        REFERENCE.get_or_init(|| {
            let m: MaterialsFile =
                serde_json::from_str(MATERIALS_JSON).expect("schemas/reference/materials.v1.json parses");
            let p: PartnersFile =
                serde_json::from_str(PARTNERS_JSON).expect("schemas/reference/partners.v1.json parses");
            Reference {
                materials_version: m.version,
                partners_version: p.version,
                materials: m.materials.into_iter().map(|x| (x.id.clone(), x)).collect(),
                partners: p.partners.into_iter().map(|x| (x.code.clone(), x)).collect(),
            }
        })
    }

    pub fn material(&self, id: &MaterialId) -> Option<&Material> {
        self.materials.get(id)
    }

    pub fn partner(&self, code: &Country) -> Option<&Partner> {
        self.partners.get(code)
    }

    pub fn materials(&self) -> impl Iterator<Item = &Material> {
        self.materials.values()
    }

    pub fn partners(&self) -> impl Iterator<Item = &Partner> {
        self.partners.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_load_with_the_expected_sizes() {
        let r = Reference::get();
        assert_eq!(r.materials().count(), 53);
        assert_eq!(r.partners().count(), 42);
        assert_eq!(r.partners().filter(|p| p.eu).count(), 27);
        assert_eq!(r.partners().filter(|p| p.nato).count(), 32);
        assert_eq!(r.partners().filter(|p| p.iea).count(), 32);
        assert_eq!(r.partner(&Country::new("GR")).unwrap().eu_code, "EL");
        let cobalt = r.material(&MaterialId::new("cobalt")).unwrap();
        assert!(cobalt.crma_strategic && cobalt.nato_defence_critical == Some(true));
        let pgm = r.material(&MaterialId::new("platinum_group_metals")).unwrap();
        assert_eq!(pgm.nato_defence_critical, None);
    }
}
