//! ISO 3166-1 countries: the alpha-2 codes conditions take, and the alpha-3 codes and English
//! names operators write instead, so a wrong code is answered with the right one.
//!
//! The table was generated from Debian's iso-codes (`iso_3166-1.json`: alpha_2, alpha_3,
//! common_name then name), plus XK, which MaxMind uses for Kosovo.

use crate::suggest::nearest;

/// `alpha-2 alpha-3 name|other name`, one country a line.
const COUNTRIES: &str = "\
AD AND Andorra
AE ARE United Arab Emirates
AF AFG Afghanistan
AG ATG Antigua and Barbuda
AI AIA Anguilla
AL ALB Albania
AM ARM Armenia
AO AGO Angola
AQ ATA Antarctica
AR ARG Argentina
AS ASM American Samoa
AT AUT Austria
AU AUS Australia
AW ABW Aruba
AX ALA Åland Islands
AZ AZE Azerbaijan
BA BIH Bosnia and Herzegovina
BB BRB Barbados
BD BGD Bangladesh
BE BEL Belgium
BF BFA Burkina Faso
BG BGR Bulgaria
BH BHR Bahrain
BI BDI Burundi
BJ BEN Benin
BL BLM Saint Barthélemy
BM BMU Bermuda
BN BRN Brunei Darussalam
BO BOL Bolivia|Bolivia, Plurinational State of
BQ BES Bonaire, Sint Eustatius and Saba
BR BRA Brazil
BS BHS Bahamas
BT BTN Bhutan
BV BVT Bouvet Island
BW BWA Botswana
BY BLR Belarus
BZ BLZ Belize
CA CAN Canada
CC CCK Cocos (Keeling) Islands
CD COD Congo, The Democratic Republic of the
CF CAF Central African Republic
CG COG Congo
CH CHE Switzerland
CI CIV Côte d'Ivoire
CK COK Cook Islands
CL CHL Chile
CM CMR Cameroon
CN CHN China
CO COL Colombia
CR CRI Costa Rica
CU CUB Cuba
CV CPV Cabo Verde
CW CUW Curaçao
CX CXR Christmas Island
CY CYP Cyprus
CZ CZE Czechia
DE DEU Germany
DJ DJI Djibouti
DK DNK Denmark
DM DMA Dominica
DO DOM Dominican Republic
DZ DZA Algeria
EC ECU Ecuador
EE EST Estonia
EG EGY Egypt
EH ESH Western Sahara
ER ERI Eritrea
ES ESP Spain
ET ETH Ethiopia
FI FIN Finland
FJ FJI Fiji
FK FLK Falkland Islands (Malvinas)
FM FSM Micronesia, Federated States of
FO FRO Faroe Islands
FR FRA France
GA GAB Gabon
GB GBR United Kingdom
GD GRD Grenada
GE GEO Georgia
GF GUF French Guiana
GG GGY Guernsey
GH GHA Ghana
GI GIB Gibraltar
GL GRL Greenland
GM GMB Gambia
GN GIN Guinea
GP GLP Guadeloupe
GQ GNQ Equatorial Guinea
GR GRC Greece
GS SGS South Georgia and the South Sandwich Islands
GT GTM Guatemala
GU GUM Guam
GW GNB Guinea-Bissau
GY GUY Guyana
HK HKG Hong Kong
HM HMD Heard Island and McDonald Islands
HN HND Honduras
HR HRV Croatia
HT HTI Haiti
HU HUN Hungary
ID IDN Indonesia
IE IRL Ireland
IL ISR Israel
IM IMN Isle of Man
IN IND India
IO IOT British Indian Ocean Territory
IQ IRQ Iraq
IR IRN Iran|Iran, Islamic Republic of
IS ISL Iceland
IT ITA Italy
JE JEY Jersey
JM JAM Jamaica
JO JOR Jordan
JP JPN Japan
KE KEN Kenya
KG KGZ Kyrgyzstan
KH KHM Cambodia
KI KIR Kiribati
KM COM Comoros
KN KNA Saint Kitts and Nevis
KP PRK North Korea|Korea, Democratic People's Republic of
KR KOR South Korea|Korea, Republic of
KW KWT Kuwait
KY CYM Cayman Islands
KZ KAZ Kazakhstan
LA LAO Laos|Lao People's Democratic Republic
LB LBN Lebanon
LC LCA Saint Lucia
LI LIE Liechtenstein
LK LKA Sri Lanka
LR LBR Liberia
LS LSO Lesotho
LT LTU Lithuania
LU LUX Luxembourg
LV LVA Latvia
LY LBY Libya
MA MAR Morocco
MC MCO Monaco
MD MDA Moldova|Moldova, Republic of
ME MNE Montenegro
MF MAF Saint Martin (French part)
MG MDG Madagascar
MH MHL Marshall Islands
MK MKD North Macedonia
ML MLI Mali
MM MMR Myanmar
MN MNG Mongolia
MO MAC Macao
MP MNP Northern Mariana Islands
MQ MTQ Martinique
MR MRT Mauritania
MS MSR Montserrat
MT MLT Malta
MU MUS Mauritius
MV MDV Maldives
MW MWI Malawi
MX MEX Mexico
MY MYS Malaysia
MZ MOZ Mozambique
NA NAM Namibia
NC NCL New Caledonia
NE NER Niger
NF NFK Norfolk Island
NG NGA Nigeria
NI NIC Nicaragua
NL NLD Netherlands
NO NOR Norway
NP NPL Nepal
NR NRU Nauru
NU NIU Niue
NZ NZL New Zealand
OM OMN Oman
PA PAN Panama
PE PER Peru
PF PYF French Polynesia
PG PNG Papua New Guinea
PH PHL Philippines
PK PAK Pakistan
PL POL Poland
PM SPM Saint Pierre and Miquelon
PN PCN Pitcairn
PR PRI Puerto Rico
PS PSE Palestine, State of
PT PRT Portugal
PW PLW Palau
PY PRY Paraguay
QA QAT Qatar
RE REU Réunion
RO ROU Romania
RS SRB Serbia
RU RUS Russian Federation
RW RWA Rwanda
SA SAU Saudi Arabia
SB SLB Solomon Islands
SC SYC Seychelles
SD SDN Sudan
SE SWE Sweden
SG SGP Singapore
SH SHN Saint Helena, Ascension and Tristan da Cunha
SI SVN Slovenia
SJ SJM Svalbard and Jan Mayen
SK SVK Slovakia
SL SLE Sierra Leone
SM SMR San Marino
SN SEN Senegal
SO SOM Somalia
SR SUR Suriname
SS SSD South Sudan
ST STP Sao Tome and Principe
SV SLV El Salvador
SX SXM Sint Maarten (Dutch part)
SY SYR Syria|Syrian Arab Republic
SZ SWZ Eswatini
TC TCA Turks and Caicos Islands
TD TCD Chad
TF ATF French Southern Territories
TG TGO Togo
TH THA Thailand
TJ TJK Tajikistan
TK TKL Tokelau
TL TLS Timor-Leste
TM TKM Turkmenistan
TN TUN Tunisia
TO TON Tonga
TR TUR Türkiye
TT TTO Trinidad and Tobago
TV TUV Tuvalu
TW TWN Taiwan|Taiwan, Province of China
TZ TZA Tanzania|Tanzania, United Republic of
UA UKR Ukraine
UG UGA Uganda
UM UMI United States Minor Outlying Islands
US USA United States
UY URY Uruguay
UZ UZB Uzbekistan
VA VAT Holy See (Vatican City State)
VC VCT Saint Vincent and the Grenadines
VE VEN Venezuela|Venezuela, Bolivarian Republic of
VG VGB Virgin Islands, British
VI VIR Virgin Islands, U.S.
VN VNM Vietnam|Viet Nam
VU VUT Vanuatu
WF WLF Wallis and Futuna
WS WSM Samoa
YE YEM Yemen
YT MYT Mayotte
ZA ZAF South Africa
ZM ZMB Zambia
ZW ZWE Zimbabwe
XK XKX Kosovo";

/// Codes written for a country that are not its ISO code: the EU's and the UK's own usage, and
/// language codes taken for country codes.
const ALIASES: &[(&str, &str)] = &[
    ("UK", "GB"),
    ("EL", "GR"),
    ("JA", "JP"),
    ("KO", "KR"),
    ("ZH", "CN"),
    ("DA", "DK"),
    ("CS", "CZ"),
];

/// Names in common use that the table's names are too far from.
const OTHER_NAMES: &[(&str, &str)] = &[
    ("England", "GB"),
    ("Scotland", "GB"),
    ("Wales", "GB"),
    ("Great Britain", "GB"),
    ("Britain", "GB"),
    ("Russia", "RU"),
    ("Holland", "NL"),
    ("USA", "US"),
    ("America", "US"),
    ("United States of America", "US"),
];

fn rows() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    COUNTRIES.lines().filter_map(|l| {
        let mut parts = l.splitn(3, ' ');
        Some((parts.next()?, parts.next()?, parts.next()?))
    })
}

/// Whether ISO 3166-1 assigns this alpha-2 code (upper case), or it is XK.
pub fn is_assigned(code: &[u8; 2]) -> bool {
    rows().any(|(a2, _, _)| a2.as_bytes() == code)
}

/// The alpha-2 code meant by something that is not one: `UK`, `DEU`, `Germany`, `Germny`.
pub fn suggest(written: &str) -> Option<&'static str> {
    let up = written.trim().to_ascii_uppercase();
    if let Some((_, code)) = ALIASES.iter().find(|(a, _)| *a == up) {
        return Some(code);
    }
    if let Some((a2, _, _)) = rows().find(|(_, a3, _)| *a3 == up) {
        return Some(a2);
    }
    if written.len() <= 3 {
        return None;
    }
    let names = rows()
        .flat_map(|(a2, _, names)| names.split('|').map(move |n| (n, a2)))
        .chain(OTHER_NAMES.iter().copied());
    let names: Vec<(&str, &str)> = names.collect();
    let best = nearest(written, names.iter().map(|(n, _)| *n))?;
    names.iter().find(|(n, _)| *n == best).map(|(_, a2)| *a2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_codes_and_names_find_the_code_meant() {
        assert_eq!(suggest("UK"), Some("GB"));
        assert_eq!(suggest("uk"), Some("GB"));
        assert_eq!(suggest("DEU"), Some("DE"));
        assert_eq!(suggest("Germany"), Some("DE"));
        assert_eq!(suggest("germny"), Some("DE"));
        assert_eq!(suggest("South Korea"), Some("KR"));
        assert_eq!(suggest("England"), Some("GB"));
        assert_eq!(suggest("XZ"), None);
        assert_eq!(suggest("Atlantis"), None);
        assert!(is_assigned(b"GB") && is_assigned(b"XK") && !is_assigned(b"UK"));
        assert_eq!(rows().count(), 250);
    }
}
