//! A deterministic generator of demo rows for the bundled schema.
//!
//! [`generate`] builds a [`Dataset`] from a seed with a small splitmix64 PRNG written here
//! (no dependency, the same output on every platform). The seed decides every value,
//! including the timestamps: the data covers a window of days that starts on a day derived
//! from the seed, never from the wall clock. The same seed and [`Scale`] always give the
//! same rows, so [`Dataset::to_sql`] is byte-identical across runs.
//!
//! What it holds (see `data/README.md` for the counts at [`Scale::Demo`]):
//! - tenants in the `us`, `eu` and `apac` regions, one topic each (marketing, fintech,
//!   health, travel, SaaS, food, fashion, …) whose vocabulary fills their text;
//! - users, brand profiles and assets, campaigns, platform connections;
//! - SHARED skills and guards; a few "staple" skills and "core" guards are used by every
//!   tenant every day, so the k-anonymous rollups have rows above and below k = 5;
//! - content requests, drafts, revision (guard and review) events and workflow runs,
//!   every day of the window;
//! - scheduled and published posts with their metrics, engagement events and conversions;
//! - experiments and their variants;
//! - knowledge documents and chunks of varied text; a chunk's `vector_id` is its
//!   `chunk_id`, for the `nds-knowledge` index.
//!
//! Left empty: the rollup tables (rebuild them with [`crate::Database::rollup`]),
//! `audit_logs` (hash-chained by the engine) and `tenant_keys` (wrapped by a master key).
//! Platform tokens are NULL: real ones are ciphertext under a tenant key.

use std::fmt::Write as _;

use crate::rng::Rng;
use crate::{Database, Param, Result};

/// How much to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// For tests: 3 tenants, a week of activity, tens of rows per table.
    Tiny,
    /// The demo: 12 tenants, 120 days of activity, a few thousand knowledge chunks.
    Demo,
}

/// The rows of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name in the bundled schema.
    pub name: &'static str,
    /// The columns each row gives, in order.
    pub columns: Vec<&'static str>,
    /// The rows, one value per column.
    pub rows: Vec<Vec<Param>>,
}

/// Generated rows for the bundled schema, tables in an order that satisfies every foreign
/// key (a table comes after every table it references).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The seed the rows were made from.
    pub seed: u64,
    /// The scale they were made at.
    pub scale: Scale,
    /// The first UTC day of activity, `YYYY-MM-DD`.
    pub first_day: String,
    /// The last UTC day of activity (drafts and requests), `YYYY-MM-DD`.
    pub last_day: String,
    /// The tables, in foreign-key-safe order; tables without rows are included, empty.
    pub tables: Vec<Table>,
}

impl Dataset {
    /// The table called `name`, if the dataset has it.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The number of rows generated for `name` (0 for a table it does not fill).
    pub fn row_count(&self, name: &str) -> usize {
        self.table(name).map_or(0, |t| t.rows.len())
    }

    /// `(table, rows)` for every table, in load order.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        self.tables.iter().map(|t| (t.name, t.rows.len())).collect()
    }

    /// The rows as SQL: one `INSERT` per row, tables in foreign-key-safe order, values as
    /// SQL literals (text quoted with `''`, blobs as `X'..'`). Deterministic: the same
    /// dataset always gives the same bytes.
    pub fn to_sql(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "-- d1vec demo dataset: seed {}, scale {:?}, days {} to {}",
            self.seed, self.scale, self.first_day, self.last_day
        );
        for table in &self.tables {
            if table.rows.is_empty() {
                continue;
            }
            let head = format!(
                "INSERT INTO {} ({}) VALUES (",
                table.name,
                table.columns.join(", ")
            );
            for row in &table.rows {
                out.push_str(&head);
                for (i, value) in row.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    push_literal(&mut out, value);
                }
                out.push_str(");\n");
            }
        }
        out
    }

    /// Inserts every row into `db` (which must have the bundled migrations applied), one
    /// atomic batch per table and thousand rows, with bound parameters.
    pub fn load(&self, db: &Database) -> Result<()> {
        self.load_with_progress(db, |_, _| {})
    }

    /// [`Dataset::load`], calling `loaded(table, rows)` after each batch is committed.
    pub fn load_with_progress(
        &self,
        db: &Database,
        mut loaded: impl FnMut(&str, usize),
    ) -> Result<()> {
        for table in &self.tables {
            if table.rows.is_empty() {
                continue;
            }
            let placeholders: Vec<String> =
                (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.name,
                table.columns.join(", "),
                placeholders.join(", ")
            );
            for chunk in table.rows.chunks(1000) {
                let statements: Vec<_> = chunk
                    .iter()
                    .map(|row| db.prepare(&sql).bind(row.iter().cloned()))
                    .collect();
                db.batch(&statements)?;
                loaded(table.name, chunk.len());
            }
        }
        Ok(())
    }
}

fn push_literal(out: &mut String, value: &Param) {
    match value {
        Param::Null => out.push_str("NULL"),
        Param::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Param::Real(r) => {
            let _ = write!(out, "{r:?}");
        }
        Param::Text(s) => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
        Param::Blob(b) => {
            out.push_str("X'");
            for byte in b {
                let _ = write!(out, "{byte:02X}");
            }
            out.push('\'');
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SS.000Z`.
fn iso(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn day_string(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
const MIN: i64 = 60;

struct Topic {
    industry: &'static str,
    brand: &'static str,
    slug: &'static str,
    nouns: &'static [&'static str],
    adjectives: &'static [&'static str],
    actions: &'static [&'static str],
    audiences: &'static [&'static str],
    campaigns: &'static [&'static str],
    conversion: &'static str,
}

const TOPICS: &[Topic] = &[
    Topic {
        industry: "marketing",
        brand: "Brightline Agency",
        slug: "brightline",
        nouns: &[
            "content calendar",
            "brand awareness",
            "lead magnet",
            "newsletter",
            "influencer brief",
            "landing page",
            "A/B test",
            "retargeting audience",
            "editorial voice",
            "webinar funnel",
            "customer persona",
            "SEO cluster",
        ],
        adjectives: &[
            "data-driven",
            "evergreen",
            "omnichannel",
            "high-intent",
            "organic",
            "authentic",
        ],
        actions: &[
            "grow the email list",
            "shorten the sales cycle",
            "repurpose long-form posts",
            "lift click-through rates",
            "nurture cold leads",
            "measure share of voice",
        ],
        audiences: &[
            "growth marketers",
            "agency clients",
            "content leads",
            "small business owners",
        ],
        campaigns: &[
            "Q2 Lead Gen Sprint",
            "Webinar Season",
            "Brand Refresh",
            "Newsletter Relaunch",
            "Always-On Awareness",
        ],
        conversion: "lead",
    },
    Topic {
        industry: "fintech",
        brand: "Ledgerly",
        slug: "ledgerly",
        nouns: &[
            "savings account",
            "interest rate",
            "card payment",
            "budgeting app",
            "credit score",
            "instant transfer",
            "expense report",
            "fraud alert",
            "virtual card",
            "payroll run",
            "invoice",
            "KYC check",
        ],
        adjectives: &[
            "secure",
            "fee-free",
            "regulated",
            "real-time",
            "transparent",
            "automated",
        ],
        actions: &[
            "reconcile expenses faster",
            "avoid overdraft fees",
            "pay suppliers on time",
            "build an emergency fund",
            "track cash flow",
            "detect suspicious payments",
        ],
        audiences: &[
            "freelancers",
            "finance teams",
            "first-time savers",
            "startup founders",
        ],
        campaigns: &[
            "Zero Fees Month",
            "Tax Season Ready",
            "Savings Challenge",
            "Business Card Launch",
            "Refer a Friend",
        ],
        conversion: "signup",
    },
    Topic {
        industry: "health",
        brand: "Vitalis Clinics",
        slug: "vitalis",
        nouns: &[
            "telehealth visit",
            "sleep routine",
            "blood pressure",
            "nutrition plan",
            "annual checkup",
            "mental health",
            "vaccination",
            "physiotherapy session",
            "patient portal",
            "prescription refill",
            "symptom checker",
            "care team",
        ],
        adjectives: &[
            "evidence-based",
            "preventive",
            "gentle",
            "clinically reviewed",
            "personalised",
            "holistic",
        ],
        actions: &[
            "book an appointment online",
            "manage chronic pain",
            "improve sleep quality",
            "lower stress levels",
            "stay on top of screenings",
            "recover after surgery",
        ],
        audiences: &["patients", "caregivers", "new parents", "older adults"],
        campaigns: &[
            "Flu Shot Drive",
            "Sleep Better Week",
            "Heart Health Month",
            "Mindful May",
            "Back to Movement",
        ],
        conversion: "lead",
    },
    Topic {
        industry: "travel",
        brand: "Wanderpass",
        slug: "wanderpass",
        nouns: &[
            "city break",
            "boutique hotel",
            "flight deal",
            "travel insurance",
            "itinerary",
            "rail pass",
            "beach resort",
            "hiking trail",
            "airport lounge",
            "visa requirement",
            "road trip",
            "local guide",
        ],
        adjectives: &[
            "last-minute",
            "family-friendly",
            "off-season",
            "sustainable",
            "all-inclusive",
            "hidden-gem",
        ],
        actions: &[
            "plan a weekend getaway",
            "travel on a budget",
            "avoid crowded sights",
            "pack carry-on only",
            "find cheaper flights",
            "explore like a local",
        ],
        audiences: &["backpackers", "families", "remote workers", "honeymooners"],
        campaigns: &[
            "Summer Escapes",
            "Shoulder Season Deals",
            "Rail Europe Week",
            "Winter Sun",
            "Weekend Getaways",
        ],
        conversion: "purchase",
    },
    Topic {
        industry: "saas",
        brand: "Stackwise",
        slug: "stackwise",
        nouns: &[
            "onboarding flow",
            "API integration",
            "dashboard",
            "free trial",
            "single sign-on",
            "usage-based pricing",
            "release notes",
            "workflow automation",
            "churn rate",
            "admin console",
            "webhook",
            "product tour",
        ],
        adjectives: &[
            "scalable",
            "self-serve",
            "enterprise-grade",
            "no-code",
            "collaborative",
            "cloud-native",
        ],
        actions: &[
            "automate repetitive tasks",
            "reduce onboarding time",
            "connect existing tools",
            "improve activation",
            "ship features faster",
            "cut support tickets",
        ],
        audiences: &[
            "product managers",
            "developers",
            "operations teams",
            "IT admins",
        ],
        campaigns: &[
            "Launch Week",
            "Trial to Paid",
            "Integration Spotlight",
            "Customer Stories",
            "Annual Plan Push",
        ],
        conversion: "subscription",
    },
    Topic {
        industry: "food",
        brand: "Harvest Table",
        slug: "harvest",
        nouns: &[
            "meal kit",
            "sourdough bread",
            "seasonal menu",
            "plant-based recipe",
            "farmers market",
            "spice blend",
            "weeknight dinner",
            "olive oil",
            "brunch special",
            "meal prep",
            "cold brew",
            "tasting menu",
        ],
        adjectives: &[
            "locally sourced",
            "organic",
            "hearty",
            "gluten-free",
            "zero-waste",
            "slow-cooked",
        ],
        actions: &[
            "cook dinner in twenty minutes",
            "reduce food waste",
            "eat more vegetables",
            "host a dinner party",
            "stock a healthy pantry",
            "try a new cuisine",
        ],
        audiences: &["home cooks", "busy parents", "food lovers", "students"],
        campaigns: &[
            "Autumn Harvest Menu",
            "Meal Kit Trial",
            "Veggie January",
            "Holiday Feasts",
            "Brunch Club",
        ],
        conversion: "purchase",
    },
    Topic {
        industry: "fashion",
        brand: "Atelier Nord",
        slug: "ateliernord",
        nouns: &[
            "capsule wardrobe",
            "linen shirt",
            "denim jacket",
            "trench coat",
            "sneaker drop",
            "knitwear",
            "sizing guide",
            "lookbook",
            "tailoring service",
            "resale program",
            "accessory",
            "runway trend",
        ],
        adjectives: &[
            "timeless",
            "sustainable",
            "oversized",
            "handcrafted",
            "minimalist",
            "limited-edition",
        ],
        actions: &[
            "build a capsule wardrobe",
            "style one piece three ways",
            "care for wool garments",
            "find the right fit",
            "shop second-hand",
            "dress for the office",
        ],
        audiences: &[
            "style-conscious shoppers",
            "conscious consumers",
            "young professionals",
            "collectors",
        ],
        campaigns: &[
            "Spring Collection",
            "Denim Days",
            "Resale Relaunch",
            "Winter Layers",
            "Members Preview",
        ],
        conversion: "purchase",
    },
    Topic {
        industry: "education",
        brand: "Learnloop",
        slug: "learnloop",
        nouns: &[
            "online course",
            "study plan",
            "language lesson",
            "certificate",
            "exam prep",
            "tutoring session",
            "coding bootcamp",
            "learning streak",
            "flashcard deck",
            "live workshop",
            "scholarship",
            "course syllabus",
        ],
        adjectives: &[
            "bite-sized",
            "self-paced",
            "accredited",
            "interactive",
            "beginner-friendly",
            "project-based",
        ],
        actions: &[
            "learn a new language",
            "pass the exam first time",
            "stay motivated while studying",
            "switch careers",
            "practise every day",
            "earn a certificate",
        ],
        audiences: &[
            "students",
            "career changers",
            "teachers",
            "lifelong learners",
        ],
        campaigns: &[
            "Back to School",
            "New Year Learning",
            "Exam Season",
            "Career Switch Month",
            "Summer Bootcamp",
        ],
        conversion: "subscription",
    },
    Topic {
        industry: "fitness",
        brand: "Pulse Athletics",
        slug: "pulse",
        nouns: &[
            "strength training",
            "running plan",
            "yoga class",
            "recovery day",
            "protein intake",
            "heart rate zone",
            "home workout",
            "gym membership",
            "mobility routine",
            "personal trainer",
            "marathon",
            "step count",
        ],
        adjectives: &[
            "high-intensity",
            "low-impact",
            "progressive",
            "beginner",
            "outdoor",
            "coach-led",
        ],
        actions: &[
            "build a training habit",
            "run a first 10k",
            "get stronger at home",
            "prevent injuries",
            "recover faster",
            "stay active at work",
        ],
        audiences: &["runners", "gym beginners", "busy professionals", "athletes"],
        campaigns: &[
            "New Year Challenge",
            "Couch to 10k",
            "Summer Shred",
            "Recovery Week",
            "Bring a Friend",
        ],
        conversion: "subscription",
    },
    Topic {
        industry: "real estate",
        brand: "Keystone Homes",
        slug: "keystone",
        nouns: &[
            "open house",
            "mortgage rate",
            "home inspection",
            "floor plan",
            "rental yield",
            "first home",
            "property valuation",
            "neighbourhood guide",
            "down payment",
            "renovation",
            "listing photo",
            "closing cost",
        ],
        adjectives: &[
            "move-in ready",
            "energy-efficient",
            "spacious",
            "family-sized",
            "newly renovated",
            "walkable",
        ],
        actions: &[
            "buy a first home",
            "sell faster",
            "stage a living room",
            "compare mortgage offers",
            "raise the asking price",
            "pick the right neighbourhood",
        ],
        audiences: &["first-time buyers", "landlords", "sellers", "investors"],
        campaigns: &[
            "Spring Market",
            "First Home Guide",
            "Open House Weekend",
            "Valuation Week",
            "Investor Briefing",
        ],
        conversion: "lead",
    },
    Topic {
        industry: "gaming",
        brand: "Pixelforge",
        slug: "pixelforge",
        nouns: &[
            "season pass",
            "patch notes",
            "co-op mode",
            "esports tournament",
            "character skin",
            "speedrun",
            "beta test",
            "game engine",
            "leaderboard",
            "community event",
            "indie title",
            "loot drop",
        ],
        adjectives: &[
            "competitive",
            "cosy",
            "open-world",
            "cross-platform",
            "retro",
            "story-driven",
        ],
        actions: &[
            "climb the leaderboard",
            "join the beta",
            "stream a first match",
            "master a new class",
            "team up with friends",
            "unlock seasonal rewards",
        ],
        audiences: &["gamers", "streamers", "modders", "esports fans"],
        campaigns: &[
            "Season Launch",
            "Beta Weekend",
            "Tournament Finals",
            "Holiday Event",
            "Creator Program",
        ],
        conversion: "purchase",
    },
    Topic {
        industry: "automotive",
        brand: "Voltway Motors",
        slug: "voltway",
        nouns: &[
            "electric vehicle",
            "charging station",
            "test drive",
            "battery range",
            "lease offer",
            "service plan",
            "driver assistance",
            "trade-in value",
            "home charger",
            "fleet program",
            "road trip planner",
            "warranty",
        ],
        adjectives: &[
            "zero-emission",
            "fast-charging",
            "connected",
            "affordable",
            "long-range",
            "certified pre-owned",
        ],
        actions: &[
            "switch to electric",
            "plan a charging stop",
            "book a test drive",
            "lower running costs",
            "maintain the battery",
            "electrify a fleet",
        ],
        audiences: &["commuters", "fleet managers", "families", "early adopters"],
        campaigns: &[
            "EV Test Drive Days",
            "Charge at Home",
            "Fleet Electrification",
            "Summer Road Trips",
            "Lease Event",
        ],
        conversion: "lead",
    },
];

const REGIONS: [&str; 3] = ["us", "eu", "apac"];
const PLANS: [&str; 4] = ["starter", "pro", "enterprise", "pro"];
const PLATFORMS: [&str; 8] = [
    "linkedin",
    "twitter",
    "facebook",
    "instagram",
    "tiktok",
    "youtube",
    "threads",
    "pinterest",
];
const METRICS: [&str; 6] = [
    "click-through rate",
    "conversion rate",
    "engagement",
    "retention",
    "average order value",
    "reach",
];
const TONES: [&str; 8] = [
    "warm",
    "confident",
    "playful",
    "expert",
    "calm",
    "bold",
    "friendly",
    "concise",
];
const DOC_KINDS: [&str; 10] = [
    "Playbook",
    "FAQ",
    "Brand guide",
    "Product sheet",
    "Case study",
    "Policy",
    "Onboarding guide",
    "Campaign brief",
    "Research note",
    "Style guide",
];
const FIRST_NAMES: [&str; 16] = [
    "ana", "ben", "chloe", "dev", "emma", "farid", "grace", "hiro", "ines", "jonas", "kemi",
    "liam", "maya", "noah", "olga", "priya",
];

const SKILL_FORMATS: [&str; 10] = [
    "Carousel",
    "Thread",
    "Short video script",
    "Long-form post",
    "Newsletter intro",
    "Story sequence",
    "Poll post",
    "Case study post",
    "Listicle",
    "Quote card",
];
const SKILL_PATTERNS: [&str; 12] = [
    "problem-agitate-solve",
    "before-after-bridge",
    "hook-story-offer",
    "myth vs fact",
    "step-by-step how-to",
    "behind the scenes",
    "customer testimonial",
    "data reveal",
    "question-led",
    "contrarian take",
    "checklist",
    "FAQ answer",
];
const SKILL_CATEGORIES: [&str; 6] = [
    "engagement",
    "conversion",
    "awareness",
    "education",
    "community",
    "retention",
];
const GUARD_CHECKS: [&str; 8] = [
    "Length limit",
    "Banned words",
    "Claim substantiation",
    "Tone match",
    "Link check",
    "Hashtag count",
    "Accessibility alt text",
    "Competitor mention",
];
const GUARD_TARGETS: [&str; 6] = [
    "headline",
    "body",
    "caption",
    "call to action",
    "hashtags",
    "image",
];
const SEVERITIES: [&str; 4] = ["info", "warning", "error", "critical"];
const MODELS: [(Option<&str>, Option<&str>, f64); 5] = [
    (Some("openai"), Some("gpt-4o-mini"), 0.000_000_6),
    (Some("openai"), Some("gpt-4o"), 0.000_01),
    (Some("anthropic"), Some("claude-3-5-haiku"), 0.000_004),
    (Some("anthropic"), Some("claude-sonnet-4"), 0.000_015),
    (None, None, 0.000_002),
];

/// How much of everything a [`Scale`] makes.
struct Sizes {
    tenants: usize,
    days: i64,
    skills: usize,
    guards: usize,
    campaigns: usize,
    docs: usize,
    chunks: (i64, i64),
    requests_per_day: (i64, i64),
    experiments: usize,
}

fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Tiny => Sizes {
            tenants: 3,
            days: 5,
            skills: 8,
            guards: 6,
            campaigns: 2,
            docs: 2,
            chunks: (2, 3),
            requests_per_day: (1, 1),
            experiments: 1,
        },
        Scale::Demo => Sizes {
            tenants: 12,
            days: 120,
            skills: 72,
            guards: 40,
            campaigns: 5,
            docs: 24,
            chunks: (8, 14),
            requests_per_day: (1, 4),
            experiments: 2,
        },
    }
}

/// Skills every tenant leans on ("staple") and guards every draft is checked against
/// ("core"): enough tenants share them each day for rollup rows to pass k-anonymity.
const STAPLE_SKILLS: usize = 4;
const CORE_GUARDS: usize = 3;

const TABLES: &[(&str, &[&str])] = &[
    (
        "tenants",
        &[
            "tenant_id",
            "name",
            "plan",
            "region",
            "industry",
            "status",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "users",
        &[
            "user_id",
            "tenant_id",
            "email",
            "display_name",
            "role",
            "status",
            "created_at",
            "last_login_at",
        ],
    ),
    (
        "brand_profiles",
        &[
            "tenant_id",
            "brand_name",
            "tone",
            "lexicon",
            "messaging",
            "voice_vector_id",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "brand_assets",
        &[
            "asset_id",
            "tenant_id",
            "kind",
            "name",
            "value",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "campaigns",
        &[
            "campaign_id",
            "tenant_id",
            "name",
            "objective",
            "status",
            "budget",
            "currency",
            "starts_at",
            "ends_at",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "skills",
        &[
            "skill_id",
            "name",
            "category",
            "description",
            "structure",
            "status",
            "version",
            "origin_tenant_id",
            "vector_id",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "guards",
        &[
            "guard_id",
            "name",
            "description",
            "rule",
            "severity",
            "status",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "platform_connections",
        &[
            "connection_id",
            "tenant_id",
            "platform",
            "handle",
            "external_account_id",
            "key_version",
            "scopes",
            "expires_at",
            "status",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "knowledge_documents",
        &[
            "doc_id",
            "tenant_id",
            "title",
            "source_uri",
            "mime_type",
            "content_hash",
            "status",
            "chunk_count",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "knowledge_chunks",
        &[
            "chunk_id",
            "doc_id",
            "tenant_id",
            "ordinal",
            "text",
            "token_count",
            "vector_id",
            "created_at",
        ],
    ),
    (
        "content_requests",
        &[
            "request_id",
            "tenant_id",
            "user_id",
            "campaign_id",
            "platform",
            "brief",
            "params",
            "status",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "content_drafts",
        &[
            "draft_id",
            "request_id",
            "tenant_id",
            "skill_id",
            "body",
            "version",
            "status",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "revision_events",
        &[
            "event_id",
            "tenant_id",
            "draft_id",
            "skill_id",
            "guard_id",
            "event_type",
            "passed",
            "pass_rate",
            "actor_user_id",
            "details",
            "created_at",
        ],
    ),
    (
        "workflow_runs",
        &[
            "run_id",
            "tenant_id",
            "request_id",
            "engine",
            "workflow",
            "status",
            "provider",
            "model",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "latency_ms",
            "error",
            "started_at",
            "finished_at",
        ],
    ),
    (
        "scheduled_posts",
        &[
            "schedule_id",
            "tenant_id",
            "draft_id",
            "connection_id",
            "scheduled_for",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "published_posts",
        &[
            "post_id",
            "tenant_id",
            "draft_id",
            "campaign_id",
            "skill_id",
            "schedule_id",
            "connection_id",
            "platform",
            "external_id",
            "url",
            "published_at",
            "created_at",
        ],
    ),
    (
        "post_metrics",
        &[
            "post_id",
            "tenant_id",
            "impressions",
            "reach",
            "clicks",
            "likes",
            "comments",
            "shares",
            "saves",
            "updated_at",
        ],
    ),
    (
        "engagement_events",
        &[
            "event_id",
            "tenant_id",
            "post_id",
            "kind",
            "quantity",
            "metadata",
            "occurred_at",
        ],
    ),
    (
        "conversions",
        &[
            "conversion_id",
            "tenant_id",
            "post_id",
            "kind",
            "value",
            "currency",
            "occurred_at",
        ],
    ),
    (
        "experiments",
        &[
            "experiment_id",
            "tenant_id",
            "name",
            "hypothesis",
            "metric",
            "status",
            "started_at",
            "ended_at",
            "created_at",
        ],
    ),
    (
        "experiment_variants",
        &[
            "variant_id",
            "experiment_id",
            "tenant_id",
            "name",
            "skill_id",
            "traffic_share",
            "posts",
            "conversions",
            "created_at",
        ],
    ),
];

fn text(s: impl Into<String>) -> Param {
    Param::Text(s.into())
}

fn int(i: i64) -> Param {
    Param::Integer(i)
}

/// A real rounded to `places` decimals, so literals stay short and exact to print.
fn real(r: f64, places: i32) -> Param {
    let f = 10f64.powi(places);
    Param::Real((r * f).round() / f)
}

fn opt(s: Option<&str>) -> Param {
    s.map_or(Param::Null, text)
}

/// A stable 64-bit FNV-1a hash, for content hashes.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn json(value: serde_json::Value) -> Param {
    text(value.to_string())
}

struct Builder {
    rng: Rng,
    tables: Vec<Table>,
    ids: Vec<u64>,
}

fn push(tables: &mut [Table], table: &str, row: Vec<Param>) {
    let t = tables
        .iter_mut()
        .find(|t| t.name == table)
        .expect("a table of TABLES");
    debug_assert_eq!(t.columns.len(), row.len(), "{table}");
    t.rows.push(row);
}

impl Builder {
    /// The next id of a kind: `prefix_` and a zero-padded counter, so ids sort by creation.
    fn id(&mut self, prefix: &str, slot: usize) -> String {
        self.ids[slot] += 1;
        format!("{prefix}_{:07}", self.ids[slot])
    }

    /// One sentence about `topic`, from a template and its vocabulary.
    fn sentence(&mut self, topic: &Topic) -> String {
        let r = &mut self.rng;
        let n = *r.pick(topic.nouns);
        let n2 = *r.pick(topic.nouns);
        let a = *r.pick(topic.adjectives);
        let v = *r.pick(topic.actions);
        let u = *r.pick(topic.audiences);
        let m = *r.pick(&METRICS);
        let tone = *r.pick(&TONES);
        let pct = r.range(3, 48);
        match r.below(12) {
            0 => format!("Our {a} {n} helps {u} {v}."),
            1 => {
                format!("When {u} ask about the {n}, lead with the {n2} and keep the tone {tone}.")
            }
            2 => format!(
                "Last quarter {} saw a {pct}% lift in {m} after teams began to {v}.",
                topic.brand
            ),
            3 => format!("Checklist: review the {n}, confirm the {n2}, then {v}."),
            4 => {
                format!("Avoid promising a {a} {n}; claims about the {n2} must be backed by data.")
            }
            5 => format!("The {a} {n} is the most requested topic among {u} this season."),
            6 => format!("Tip: pair the {n} with a {a} {n2} to {v} without raising costs."),
            7 => format!("FAQ: how do {u} {v}? Start with the {n}, then track {m} every week."),
            8 => format!("In interviews, {u} said the {n} matters more than the {n2}."),
            9 => format!("Use {tone}, plain language when explaining the {a} {n} to {u}."),
            10 => format!("A {a} {n} reduced churn by {pct}% for {u} who wanted to {v}."),
            _ => format!("Do not compare the {n} with competitors; focus on how it helps {u} {v}."),
        }
    }

    fn paragraph(&mut self, topic: &Topic, sentences: i64) -> String {
        let count = self.rng.range(sentences, sentences + 3);
        (0..count)
            .map(|_| self.sentence(topic))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

// Slots of Builder::ids.
const ID_USER: usize = 0;
const ID_ASSET: usize = 1;
const ID_CAMPAIGN: usize = 2;
const ID_CONNECTION: usize = 3;
const ID_DOC: usize = 4;
const ID_CHUNK: usize = 5;
const ID_REQUEST: usize = 6;
const ID_DRAFT: usize = 7;
const ID_EVENT: usize = 8;
const ID_RUN: usize = 9;
const ID_SCHEDULE: usize = 10;
const ID_POST: usize = 11;
const ID_ENGAGEMENT: usize = 12;
const ID_CONVERSION: usize = 13;
const ID_EXPERIMENT: usize = 14;
const ID_VARIANT: usize = 15;

struct TenantCtx {
    id: String,
    topic: &'static Topic,
    users: Vec<(String, &'static str)>,
    campaigns: Vec<(String, i64, i64)>,
    connections: Vec<(String, &'static str)>,
}

/// Generates the dataset for `seed` at `scale`. Deterministic: no clock, no global state.
pub fn generate(seed: u64, scale: Scale) -> Dataset {
    let sz = sizes(scale);
    let mut b = Builder {
        rng: Rng(seed),
        tables: TABLES
            .iter()
            .map(|(name, cols)| Table {
                name,
                columns: cols.to_vec(),
                rows: Vec::new(),
            })
            .collect(),
        ids: vec![0; 16],
    };
    // The window of activity starts on a day between 2025-09-01 and 2025-11-29.
    let first_day = days_from_civil(2025, 9, 1) + (seed % 90) as i64;
    let start = first_day * DAY;
    let end = start + sz.days * DAY;

    // Tenants, users, brand profiles and assets, campaigns, connections.
    let mut tenants = Vec::new();
    for (i, topic) in TOPICS.iter().take(sz.tenants).enumerate() {
        let id = format!("t_{}", topic.slug);
        let created = start - (400 - 25 * i as i64) * DAY + b.rng.range(0, 20 * HOUR);
        push(
            &mut b.tables,
            "tenants",
            vec![
                text(&id),
                text(topic.brand),
                text(PLANS[i % PLANS.len()]),
                text(REGIONS[i % REGIONS.len()]),
                text(topic.industry),
                text("active"),
                text(iso(created)),
                text(iso(created + 30 * DAY)),
            ],
        );
        let mut ctx = TenantCtx {
            id,
            topic,
            users: Vec::new(),
            campaigns: Vec::new(),
            connections: Vec::new(),
        };
        for (k, role) in ["owner", "admin", "editor", "editor", "viewer"]
            .iter()
            .enumerate()
        {
            let user_id = b.id("usr", ID_USER);
            let name = FIRST_NAMES[(i * 5 + k) % FIRST_NAMES.len()];
            push(
                &mut b.tables,
                "users",
                vec![
                    text(&user_id),
                    text(&ctx.id),
                    text(format!("{name}@{}.example", topic.slug)),
                    text(format!("{}{}", name[..1].to_uppercase(), &name[1..])),
                    text(*role),
                    text("active"),
                    text(iso(created + k as i64 * DAY)),
                    text(iso(end - b.rng.range(0, 5 * DAY))),
                ],
            );
            ctx.users.push((user_id, *role));
        }
        let tone: Vec<&str> = (0..3).map(|_| *b.rng.pick(&TONES)).collect();
        push(
            &mut b.tables,
            "brand_profiles",
            vec![
                text(&ctx.id),
                text(topic.brand),
                json(serde_json::json!({ "adjectives": tone, "formality": b.rng.range(1, 5) })),
                json(serde_json::json!({
                    "preferred": &topic.nouns[..4],
                    "avoid": ["cheap", "guaranteed", "revolutionary"],
                })),
                json(serde_json::json!({
                    "tagline": format!("{} for {}", topic.adjectives[0], topic.audiences[0]),
                    "pillars": &topic.actions[..3],
                })),
                text(format!("voice-{}", ctx.id)),
                text(iso(created)),
                text(iso(created + 10 * DAY)),
            ],
        );
        let assets = [
            (
                "color",
                "primary",
                serde_json::json!({ "hex": format!("#{:06X}", b.rng.next_u64() & 0xFF_FFFF) }),
            ),
            (
                "color",
                "accent",
                serde_json::json!({ "hex": format!("#{:06X}", b.rng.next_u64() & 0xFF_FFFF) }),
            ),
            (
                "typography",
                "headings",
                serde_json::json!({ "family": *b.rng.pick(&["Inter", "Lora", "Manrope", "Playfair Display"]), "weight": 700 }),
            ),
            (
                "logo",
                "main",
                serde_json::json!({ "uri": format!("https://cdn.example/{}/logo.svg", topic.slug) }),
            ),
            (
                "template",
                "post",
                serde_json::json!({ "layout": *b.rng.pick(&["split", "full-bleed", "grid"]) }),
            ),
        ];
        for (kind, name, value) in assets {
            let asset_id = b.id("ast", ID_ASSET);
            push(
                &mut b.tables,
                "brand_assets",
                vec![
                    text(asset_id),
                    text(&ctx.id),
                    text(kind),
                    text(name),
                    json(value),
                    text(iso(created)),
                    text(iso(created)),
                ],
            );
        }
        for c in 0..sz.campaigns {
            let span = sz.days / sz.campaigns as i64;
            let c_start = start + (c as i64 * span - 3).max(0) * DAY;
            let c_end = start + ((c as i64 + 1) * span + 3).min(sz.days) * DAY - 1;
            let campaign_id = b.id("cmp", ID_CAMPAIGN);
            let status = if c + 1 == sz.campaigns {
                "active"
            } else {
                "completed"
            };
            push(
                &mut b.tables,
                "campaigns",
                vec![
                    text(&campaign_id),
                    text(&ctx.id),
                    text(topic.campaigns[c % topic.campaigns.len()]),
                    text(format!(
                        "Help {} {}",
                        topic.audiences[c % topic.audiences.len()],
                        topic.actions[c % topic.actions.len()]
                    )),
                    text(status),
                    real(b.rng.range(5, 200) as f64 * 100.0, 2),
                    text(["USD", "EUR", "SGD"][i % 3]),
                    text(iso(c_start)),
                    text(iso(c_end)),
                    text(iso(c_start - 7 * DAY)),
                    text(iso(c_start - 7 * DAY)),
                ],
            );
            ctx.campaigns.push((campaign_id, c_start, c_end));
        }
        let mut platforms = PLATFORMS.to_vec();
        for _ in 0..3 {
            let p = platforms.remove(b.rng.below(platforms.len()));
            let connection_id = b.id("con", ID_CONNECTION);
            push(
                &mut b.tables,
                "platform_connections",
                vec![
                    text(&connection_id),
                    text(&ctx.id),
                    text(p),
                    text(format!("@{}", topic.slug)),
                    text(format!("{p}-acct-{}", b.rng.range(100_000, 999_999))),
                    int(1),
                    json(serde_json::json!(["read", "publish"])),
                    text(iso(end + 60 * DAY)),
                    text("active"),
                    text(iso(created + 2 * DAY)),
                    text(iso(created + 2 * DAY)),
                ],
            );
            ctx.connections.push((connection_id, p));
        }
        tenants.push(ctx);
    }

    // SHARED skills and guards.
    let setup = start - 60 * DAY;
    let mut skills = Vec::new();
    for k in 0..sz.skills {
        let skill_id = format!("skl_{:04}", k + 1);
        let format = SKILL_FORMATS[k % SKILL_FORMATS.len()];
        let pattern = SKILL_PATTERNS[(k / SKILL_FORMATS.len() + k) % SKILL_PATTERNS.len()];
        let status = if k < STAPLE_SKILLS || k % 9 != 8 {
            "active"
        } else if k % 2 == 0 {
            "draft"
        } else {
            "deprecated"
        };
        let origin = if k % 5 == 4 {
            Some(tenants[k % tenants.len()].id.clone())
        } else {
            None
        };
        let steps: Vec<&str> = pattern.split(['-', ' ']).filter(|s| s.len() > 2).collect();
        push(
            &mut b.tables,
            "skills",
            vec![
                text(&skill_id),
                text(format!("{format}: {pattern}")),
                text(SKILL_CATEGORIES[k % SKILL_CATEGORIES.len()]),
                text(format!(
                    "A {} built on the {pattern} pattern.",
                    format.to_lowercase()
                )),
                json(serde_json::json!({ "steps": steps, "max_words": 60 + 20 * (k % 8) })),
                text(status),
                int(1 + (k % 3) as i64),
                opt(origin.as_deref()),
                text(&skill_id),
                text(iso(setup + k as i64 * HOUR)),
                text(iso(setup + k as i64 * HOUR)),
            ],
        );
        if status == "active" {
            skills.push(skill_id);
        }
    }
    let mut guards = Vec::new();
    for k in 0..sz.guards {
        let guard_id = format!("grd_{:04}", k + 1);
        let check = GUARD_CHECKS[k % GUARD_CHECKS.len()];
        let target = GUARD_TARGETS[(k / GUARD_CHECKS.len() + k) % GUARD_TARGETS.len()];
        let status = if k < CORE_GUARDS || k % 10 != 9 {
            "active"
        } else {
            "deprecated"
        };
        push(
            &mut b.tables,
            "guards",
            vec![
                text(&guard_id),
                text(format!("{check} ({target})")),
                text(format!(
                    "Checks the {target} of a draft: {}.",
                    check.to_lowercase()
                )),
                json(
                    serde_json::json!({ "check": check.to_lowercase().replace(' ', "_"), "target": target, "clauses": 1 + k % 4 }),
                ),
                text(SEVERITIES[k % SEVERITIES.len()]),
                text(status),
                text(iso(setup + k as i64 * HOUR)),
                text(iso(setup + k as i64 * HOUR)),
            ],
        );
        if status == "active" {
            guards.push(guard_id);
        }
    }

    // Knowledge base: documents mostly on the tenant's own topic.
    for (i, ctx) in tenants.iter().enumerate() {
        for d in 0..sz.docs {
            let topic = if b.rng.chance(0.8) {
                ctx.topic
            } else {
                &TOPICS[b.rng.below(TOPICS.len())]
            };
            let doc_id = b.id("doc", ID_DOC);
            let kind = DOC_KINDS[(d + i) % DOC_KINDS.len()];
            let title = format!(
                "{kind}: {} {}",
                b.rng.pick(topic.adjectives),
                b.rng.pick(topic.nouns)
            );
            let created = start - (30 - d as i64 % 30) * DAY + b.rng.range(0, DAY - 1);
            let chunks = b.rng.range(sz.chunks.0, sz.chunks.1);
            let texts: Vec<String> = (0..chunks).map(|_| b.paragraph(topic, 4)).collect();
            push(
                &mut b.tables,
                "knowledge_documents",
                vec![
                    text(&doc_id),
                    text(&ctx.id),
                    text(&title),
                    text(format!(
                        "https://docs.{}.example/{}",
                        ctx.topic.slug, doc_id
                    )),
                    text(if d % 3 == 0 {
                        "application/pdf"
                    } else {
                        "text/markdown"
                    }),
                    text(format!("{:016x}", fnv(&texts.concat()))),
                    text("ready"),
                    int(chunks),
                    text(iso(created)),
                    text(iso(created + HOUR)),
                ],
            );
            for (ordinal, body) in texts.into_iter().enumerate() {
                let chunk_id = b.id("chk", ID_CHUNK);
                let tokens = body.split_whitespace().count() as i64 * 4 / 3;
                push(
                    &mut b.tables,
                    "knowledge_chunks",
                    vec![
                        text(&chunk_id),
                        text(&doc_id),
                        text(&ctx.id),
                        int(ordinal as i64),
                        text(body),
                        int(tokens),
                        text(&chunk_id),
                        text(iso(created + HOUR)),
                    ],
                );
            }
        }
    }

    // Daily activity: requests, drafts, guard checks and reviews, runs, posts, metrics.
    let mut post_serial = 0;
    for day in 0..sz.days {
        for ctx in &tenants {
            let requests = b.rng.range(sz.requests_per_day.0, sz.requests_per_day.1);
            for _ in 0..requests {
                generate_request(
                    &mut b,
                    ctx,
                    &skills,
                    &guards,
                    start + day * DAY,
                    &mut post_serial,
                );
            }
        }
    }

    // Conversions no post is credited with: one a week per tenant.
    for ctx in &tenants {
        let mut t = start + b.rng.range(0, 7 * DAY - 1);
        while t < end {
            let conversion_id = b.id("cnv", ID_CONVERSION);
            push(
                &mut b.tables,
                "conversions",
                vec![
                    text(conversion_id),
                    text(&ctx.id),
                    Param::Null,
                    text("other"),
                    real(b.rng.range(0, 5000) as f64 / 100.0, 2),
                    text("USD"),
                    text(iso(t)),
                ],
            );
            t += 7 * DAY;
        }
    }

    // Experiments: staple skills against each other.
    for ctx in &tenants {
        for e in 0..sz.experiments {
            let experiment_id = b.id("exp", ID_EXPERIMENT);
            let e_start = start + (e as i64 * sz.days / 2) * DAY;
            let done = e + 1 < sz.experiments;
            push(
                &mut b.tables,
                "experiments",
                vec![
                    text(&experiment_id),
                    text(&ctx.id),
                    text(format!(
                        "{} hook test #{}",
                        ctx.topic.campaigns[e % 5],
                        e + 1
                    )),
                    text(format!(
                        "A question-led hook lifts {} for {}",
                        METRICS[e % METRICS.len()],
                        ctx.topic.audiences[0]
                    )),
                    text("conversions"),
                    text(if done { "completed" } else { "running" }),
                    text(iso(e_start)),
                    if done {
                        text(iso(e_start + sz.days / 2 * DAY - 1))
                    } else {
                        Param::Null
                    },
                    text(iso(e_start - DAY)),
                ],
            );
            for (v, name) in ["control", "variant"].iter().enumerate() {
                let variant_id = b.id("var", ID_VARIANT);
                let posts = b.rng.range(5, 60);
                push(
                    &mut b.tables,
                    "experiment_variants",
                    vec![
                        text(variant_id),
                        text(&experiment_id),
                        text(&ctx.id),
                        text(*name),
                        text(&skills[(e * 2 + v) % STAPLE_SKILLS.min(skills.len())]),
                        real(0.5, 2),
                        int(posts),
                        int(b.rng.range(0, posts / 3)),
                        text(iso(e_start - DAY)),
                    ],
                );
            }
        }
    }

    Dataset {
        seed,
        scale,
        first_day: day_string(first_day),
        last_day: day_string(first_day + sz.days - 1),
        tables: b.tables,
    }
}

/// One content request on the day starting at `day_start`, with its drafts, events, run
/// and, when approved, its schedule, post, metrics and conversions.
fn generate_request(
    b: &mut Builder,
    ctx: &TenantCtx,
    skills: &[String],
    guards: &[String],
    day_start: i64,
    post_serial: &mut u64,
) {
    let topic = ctx.topic;
    let t0 = day_start + b.rng.range(8 * HOUR, 16 * HOUR);
    let request_id = b.id("req", ID_REQUEST);
    let (connection_id, platform) = ctx.connections[b.rng.below(ctx.connections.len())].clone();
    let campaign = ctx
        .campaigns
        .iter()
        .find(|(_, s, e)| *s <= t0 && t0 <= *e)
        .filter(|_| b.rng.chance(0.75))
        .map(|(id, _, _)| id.clone());
    let author = ctx.users[2 + b.rng.below(2)].0.clone();
    let reviewer = ctx.users[b.rng.below(2)].0.clone();
    let versions = if b.rng.chance(0.3) { 2 } else { 1 };
    let roll = b.rng.unit();
    let (final_status, request_status) = if roll < 0.75 {
        ("approved", "approved")
    } else if roll < 0.85 {
        ("rejected", "rejected")
    } else {
        ("in_review", "review")
    };
    let publish = final_status == "approved" && b.rng.chance(0.85);
    let skill = if b.rng.chance(0.6) {
        skills[b.rng.below(STAPLE_SKILLS.min(skills.len()))].clone()
    } else {
        skills[b.rng.below(skills.len())].clone()
    };
    let brief = format!(
        "{} post for {} about the {} {}: {}",
        platform,
        b.rng.pick(topic.audiences),
        b.rng.pick(topic.adjectives),
        b.rng.pick(topic.nouns),
        b.sentence(topic)
    );
    push(
        &mut b.tables,
        "content_requests",
        vec![
            text(&request_id),
            text(&ctx.id),
            text(&author),
            opt(campaign.as_deref()),
            text(platform),
            text(brief),
            json(
                serde_json::json!({ "tone": b.rng.pick(&TONES), "max_words": 40 + 20 * b.rng.range(0, 5) }),
            ),
            text(request_status),
            text(iso(t0)),
            text(iso(t0 + 4 * HOUR)),
        ],
    );
    let mut draft_id = String::new();
    for version in 1..=versions {
        let status = if version < versions {
            "rejected"
        } else if publish {
            "published"
        } else {
            final_status
        };
        draft_id = b.id("drf", ID_DRAFT);
        let t = t0 + (version - 1) * 90 * MIN + 5 * MIN;
        let body = b.paragraph(topic, 2);
        push(
            &mut b.tables,
            "content_drafts",
            vec![
                text(&draft_id),
                text(&request_id),
                text(&ctx.id),
                text(&skill),
                text(body),
                int(version),
                text(status),
                text(iso(t)),
                text(iso(t + 60 * MIN)),
            ],
        );
        // The workflow run that produced the draft.
        let (provider, model, rate) = *b.rng.pick(&MODELS);
        let engine = if provider.is_none() || b.rng.chance(0.3) {
            "openmanus"
        } else {
            "dify"
        };
        let tokens_in = b.rng.range(400, 3000);
        let tokens_out = b.rng.range(150, 1200);
        let failed = b.rng.chance(0.04);
        let latency = b.rng.range(800, 25_000);
        let run_id = b.id("run", ID_RUN);
        push(
            &mut b.tables,
            "workflow_runs",
            vec![
                text(run_id),
                text(&ctx.id),
                text(&request_id),
                text(engine),
                text(if engine == "dify" {
                    "generate-post"
                } else {
                    "research-and-write"
                }),
                text(if failed { "failed" } else { "succeeded" }),
                opt(provider),
                opt(model),
                int(tokens_in),
                int(tokens_out),
                real((tokens_in + tokens_out) as f64 * rate, 6),
                int(latency),
                if failed {
                    text("upstream timeout")
                } else {
                    Param::Null
                },
                text(iso(t - 4 * MIN)),
                text(iso(t - 4 * MIN + latency / 1000)),
            ],
        );
        // Guard checks: every core guard and one other active guard.
        let mut checked: Vec<String> = guards.iter().take(CORE_GUARDS).cloned().collect();
        if guards.len() > CORE_GUARDS && b.rng.chance(0.8) {
            checked.push(guards[CORE_GUARDS + b.rng.below(guards.len() - CORE_GUARDS)].clone());
        }
        let pass_p = if status == "rejected" { 0.6 } else { 0.92 };
        for (g, guard_id) in checked.iter().enumerate() {
            let passed = b.rng.chance(pass_p);
            let rate = if passed {
                1.0
            } else {
                [0.25, 0.5, 0.75][b.rng.below(3)]
            };
            let event_id = b.id("rev", ID_EVENT);
            push(
                &mut b.tables,
                "revision_events",
                vec![
                    text(event_id),
                    text(&ctx.id),
                    text(&draft_id),
                    text(&skill),
                    text(guard_id),
                    text("guard_check"),
                    int(i64::from(passed)),
                    real(rate, 2),
                    Param::Null,
                    json(serde_json::json!({ "version": version })),
                    text(iso(t + (g as i64 + 1) * MIN)),
                ],
            );
        }
        if b.rng.chance(0.3) {
            let event_id = b.id("rev", ID_EVENT);
            push(
                &mut b.tables,
                "revision_events",
                vec![
                    text(event_id),
                    text(&ctx.id),
                    text(&draft_id),
                    text(&skill),
                    Param::Null,
                    text("edit"),
                    Param::Null,
                    Param::Null,
                    text(&author),
                    json(serde_json::json!({ "words_changed": b.rng.range(1, 40) })),
                    text(iso(t + 20 * MIN)),
                ],
            );
        }
        let review = match status {
            "rejected" => Some("review_rejected"),
            "approved" | "published" => Some("review_approved"),
            _ => None,
        };
        if let Some(kind) = review {
            let event_id = b.id("rev", ID_EVENT);
            push(
                &mut b.tables,
                "revision_events",
                vec![
                    text(event_id),
                    text(&ctx.id),
                    text(&draft_id),
                    text(&skill),
                    Param::Null,
                    text(kind),
                    Param::Null,
                    Param::Null,
                    text(&reviewer),
                    json(serde_json::json!({})),
                    text(iso(t + 45 * MIN)),
                ],
            );
        }
    }
    if final_status != "approved" {
        return;
    }
    // Approved: scheduled; published unless still queued.
    let schedule_id = b.id("sch", ID_SCHEDULE);
    let when = day_start + b.rng.range(0, 2) * DAY + b.rng.range(9 * HOUR, 19 * HOUR);
    push(
        &mut b.tables,
        "scheduled_posts",
        vec![
            text(&schedule_id),
            text(&ctx.id),
            text(&draft_id),
            text(&connection_id),
            text(iso(when)),
            text(if publish { "published" } else { "queued" }),
            int(i64::from(publish)),
            Param::Null,
            text(iso(t0 + 4 * HOUR)),
            text(iso(if publish { when } else { t0 + 4 * HOUR })),
        ],
    );
    if !publish {
        return;
    }
    *post_serial += 1;
    let post_id = b.id("pst", ID_POST);
    let published = when + b.rng.range(0, 180);
    let external_id = format!(
        "{}{:09}",
        &platform[..2],
        100_000_000 + *post_serial * 7919 % 900_000_000
    );
    push(
        &mut b.tables,
        "published_posts",
        vec![
            text(&post_id),
            text(&ctx.id),
            text(&draft_id),
            opt(campaign.as_deref()),
            text(&skill),
            text(&schedule_id),
            text(&connection_id),
            text(platform),
            text(&external_id),
            text(format!(
                "https://{platform}.example/{}/{external_id}",
                topic.slug
            )),
            text(iso(published)),
            text(iso(published)),
        ],
    );
    // Engagement over two days, and the totals the platform reports.
    let staple_boost = if skills.iter().take(STAPLE_SKILLS).any(|s| *s == skill) {
        1.3
    } else {
        1.0
    };
    let mut totals = [0i64; 6]; // impressions, clicks, likes, comments, shares, saves
    for (d, share) in [(0, 0.7), (1, 0.3)] {
        let impressions = (b.rng.range(300, 6000) as f64 * share * staple_boost) as i64;
        let likes = (impressions as f64 * b.rng.range(5, 60) as f64 / 1000.0) as i64;
        let counts = [
            impressions,
            (impressions as f64 * b.rng.range(3, 30) as f64 / 1000.0) as i64,
            likes,
            likes / b.rng.range(5, 15),
            likes / b.rng.range(3, 8),
            if matches!(platform, "instagram" | "pinterest") {
                likes / 4
            } else {
                0
            },
        ];
        let at = published + d * DAY + b.rng.range(HOUR, 6 * HOUR);
        for (k, kind) in ["impression", "click", "like", "comment", "share", "save"]
            .iter()
            .enumerate()
        {
            if counts[k] < 1 {
                continue;
            }
            totals[k] += counts[k];
            let event_id = b.id("eng", ID_ENGAGEMENT);
            push(
                &mut b.tables,
                "engagement_events",
                vec![
                    text(event_id),
                    text(&ctx.id),
                    text(&post_id),
                    text(*kind),
                    int(counts[k]),
                    json(serde_json::json!({ "source": "platform_api" })),
                    text(iso(at)),
                ],
            );
        }
    }
    push(
        &mut b.tables,
        "post_metrics",
        vec![
            text(&post_id),
            text(&ctx.id),
            int(totals[0]),
            int(totals[0] * b.rng.range(55, 90) / 100),
            int(totals[1]),
            int(totals[2]),
            int(totals[3]),
            int(totals[4]),
            int(totals[5]),
            text(iso(published + 2 * DAY + 6 * HOUR)),
        ],
    );
    if b.rng.chance(0.3) {
        for _ in 0..b.rng.range(1, 2) {
            let value = match topic.conversion {
                "purchase" => b.rng.range(2_000, 30_000) as f64 / 100.0,
                "subscription" => b.rng.range(900, 9_900) as f64 / 100.0,
                "lead" => b.rng.range(500, 5_000) as f64 / 100.0,
                _ => 0.0,
            };
            let conversion_id = b.id("cnv", ID_CONVERSION);
            push(
                &mut b.tables,
                "conversions",
                vec![
                    text(conversion_id),
                    text(&ctx.id),
                    text(&post_id),
                    text(topic.conversion),
                    real(value, 2),
                    text("USD"),
                    text(iso(published + b.rng.range(HOUR, 72 * HOUR))),
                ],
            );
        }
    }
}
