"""The word lists the detectors recognise personal data by: frequent first names and surnames,
the column names that say what a column holds, and the words of street addresses.

Names and words are compared as the detectors say (``vern.datamap.detectors``): column names as
whole words of the column's name, names without letter case or accents.
"""

from __future__ import annotations

POSTCODE_COLUMNS = ("postnr", "postnummer", "postcode", "postal_code", "zip", "zipcode")
NAME_COLUMNS = (  # a bare "name" or "navn" is also a category's or a product's: see is_person_name
    "fornavn",
    "etternavn",
    "first_name",
    "last_name",
    "firstname",
    "lastname",
    "surname",
    "given_name",
    "family_name",
    "full_name",
    "display_name",
)
# Common Norwegian first names and surnames (SSB's most frequent), for columns without a telling name.
COMMON_NAMES = frozenset(
    [
        "Jan",
        "Per",
        "Bjørn",
        "Ole",
        "Lars",
        "Kjell",
        "Knut",
        "Arne",
        "Svein",
        "Thomas",
        "Hans",
        "Geir",
        "Tor",
        "Morten",
        "Terje",
        "Odd",
        "Erik",
        "Martin",
        "Andreas",
        "John",
        "Anders",
        "Rune",
        "Trond",
        "Tore",
        "Jon",
        "Nils",
        "Ola",
        "Espen",
        "Magnus",
        "Henrik",
        "Sindre",
        "Jonas",
        "Emil",
        "Kristian",
        "Anne",
        "Inger",
        "Kari",
        "Marit",
        "Ingrid",
        "Liv",
        "Eva",
        "Berit",
        "Astrid",
        "Bjørg",
        "Hilde",
        "Anna",
        "Solveig",
        "Marianne",
        "Randi",
        "Ida",
        "Nina",
        "Maria",
        "Elisabeth",
        "Kristin",
        "Bente",
        "Heidi",
        "Silje",
        "Hanne",
        "Ingeborg",
        "Nora",
        "Emma",
        "Sara",
        "Sofie",
        "Thea",
        "Maja",
        "Hansen",
        "Johansen",
        "Olsen",
        "Larsen",
        "Andersen",
        "Pedersen",
        "Nilsen",
        "Kristiansen",
        "Jensen",
        "Karlsen",
        "Johnsen",
        "Pettersen",
        "Eriksen",
        "Berg",
        "Haugen",
        "Hagen",
        "Johannessen",
        "Andreassen",
        "Jacobsen",
        "Dahl",
        "Jørgensen",
        "Halvorsen",
        "Henriksen",
        "Lund",
        "Sørensen",
        "Jakobsen",
        "Moen",
        "Gundersen",
        "Iversen",
        "Strand",
        "Solberg",
        "Svendsen",
        "Eide",
        "Knutsen",
        "Martinsen",
        "Paulsen",
        "Bakken",
        "Kristoffersen",
        "Mathisen",
        "Lie",
        "Amundsen",
        "Nguyen",
        "Rasmussen",
        "Ali",
        "Lunde",
        "Nordmann",
        "Solheim",
        "Berge",
        "Moe",
        "Nygård",
        "Bakke",
        "Kristensen",
        "Fredriksen",
        "Holm",
        "Lien",
        "Hauge",
        "Christensen",
    ]
)

# Frequent first names and surnames of many countries (lower case), for columns whose name does not
# say "name": a value of two or more words, one of which is a known name, is taken as a name.
_INTERNATIONAL_NAMES_TEXT = """
    james john robert michael william david richard joseph thomas charles christopher daniel matthew
    anthony mark donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward
    jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin
    samuel gregory alexander frank patrick raymond jack dennis jerry tyler aaron jose adam nathan
    henry douglas zachary peter kyle ethan walter noah jeremy christian keith roger terry gerald
    harold sean austin carl arthur lawrence dylan jesse jordan bryan billy joe bruce gabriel logan
    albert willie alan juan wayne elijah randy roy vincent ralph eugene russell bobby mason philip
    louis mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty
    margaret sandra ashley kimberly emily donna michelle carol amanda dorothy melissa deborah
    stephanie rebecca sharon laura cynthia kathleen amy angela shirley anna brenda pamela emma
    nicole helen samantha katherine christine debra rachel carolyn janet catherine maria heather
    diane ruth julie olivia joyce virginia victoria kelly lauren christina joan evelyn judith megan
    andrea cheryl hannah jacqueline martha gloria teresa ann sara madison frances kathryn janice
    jean abigail alice judy sophia grace denise amber doris marilyn danielle beverly isabella
    theresa diana natalie brittany charlotte marie kayla alexis lori mohammed muhammad ahmed ali
    fatima aisha omar hassan yusuf ibrahim mustafa leila wei li ming hui yan jun hiroshi yuki akira
    kenji sakura haruto aiko priya raj amit sunita anil deepak rahul pooja carlos luis miguel jorge
    pedro manuel francisco antonio javier sergio pablo diego carmen lucia elena isabel rosa pilar
    dolores marta ana sofia hans klaus jürgen wolfgang stefan uwe frank dieter peter michael heike
    petra sabine monika ursula andrea claudia jean pierre michel philippe alain nicolas françois
    jacques bernard marie nathalie isabelle sylvie catherine françoise giuseppe giovanni marco luca
    francesco alessandro paola giulia chiara francesca sven lars mats anders johan erik karin eva
    lena ingrid anna kerstin jan piotr krzysztof tomasz anna katarzyna małgorzata agnieszka olga
    ivan sergei dmitri natalia tatiana irina svetlana smith johnson williams brown jones garcia
    miller davis rodriguez martinez hernandez lopez gonzalez wilson anderson thomas taylor moore
    jackson martin lee perez thompson white harris sanchez clark ramirez lewis robinson walker young
    allen king wright scott torres nguyen hill flores green adams nelson baker hall rivera campbell
    mitchell carter roberts gomez phillips evans turner diaz parker cruz edwards collins reyes
    stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed
    kelly howard ramos kim cox ward richardson watson brooks chavez wood james bennett gray mendoza
    ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez müller schmidt
    schneider fischer weber meyer wagner becker schulz hoffmann schäfer koch bauer richter klein
    wolf schröder neumann schwarz zimmermann braun krüger hofmann hartmann lange schmitt werner
    krause meier lehmann schmid martin bernard dubois thomas robert richard petit durand leroy
    moreau simon laurent lefebvre michel rossi russo ferrari esposito bianchi romano colombo ricci
    marino greco bruno gallo conti costa fernández gonzález rodríguez lópez martínez sánchez pérez
    gómez martín jiménez ruiz hernández díaz moreno álvarez romero alonso gutiérrez navarro silva
    santos oliveira souza pereira ferreira almeida carvalho gomes ribeiro wang zhang liu chen yang
    huang zhao wu zhou xu sun ma zhu hu guo he lin luo tanaka suzuki takahashi watanabe ito yamamoto
    nakamura kobayashi sato kato singh kumar sharma gupta khan shah nowak kowalski wiśniewski
    andersson johansson karlsson nilsson eriksson larsson olsson persson svensson gustafsson ivanov
    smirnov kuznetsov popov o'brien murphy kelly walsh byrne ryan o'connor
"""
INTERNATIONAL_NAMES = frozenset(_INTERNATIONAL_NAMES_TEXT.split() + [n.lower() for n in COMMON_NAMES])

# Column names that say what a column holds (matched as a whole word of the column name).
STRONG_NAME_COLUMNS = (
    "first_name",
    "last_name",
    "firstname",
    "lastname",
    "surname",
    "given_name",
    "family_name",
    "full_name",
    "fullname",
    "middle_name",
    "maiden_name",
    "fornavn",
    "etternavn",
    "mellomnavn",
    "display_name",
    "nickname",
    "contact_name",
    "payer_name",
    "reporter_name",
    "customer_name",
    "sender_name",
    "recipient_name",
    "holder_name",
    "account_holder",
    "cardholder",
    "owner_name",
    "employee_name",
    "staff_name",
    "author_name",
    "user_name_full",
    "parent_name",
    "guardian_name",
    "child_name",
    "student_name",
    "teacher_name",
    "patient_name",
    "member_name",
    "person_name",
    "billing_name",
    "shipping_name",
    "legal_name",
    "preferred_name",
    "fname",
    "lname",
)
WEAK_NAME_COLUMNS = ("name", "navn", "names")
USERNAME_COLUMNS = ("username", "user_name", "login", "login_name", "handle", "screen_name", "brukernavn")
ADDRESS_COLUMNS = (
    "address",
    "address1",
    "address2",
    "address_1",
    "address_2",
    "address_line",
    "address_line1",
    "address_line2",
    "addressline1",
    "addressline2",
    "street",
    "street_address",
    "streetaddress",
    "adresse",
    "gateadresse",
    "postadresse",
    "line1",
    "line2",
    "billing_address",
    "shipping_address",
    "home_address",
    "strasse",
    "straße",
    "anschrift",
)
CITY_COLUMNS = (
    "city",
    "town",
    "district",
    "county",
    "province",
    "region",
    "poststed",
    "sted",
    "locality",
    "municipality",
    "kommune",
    "ort",
    "stadt",
    "ville",
)
PHONE_COLUMNS = (
    "phone",
    "phone_number",
    "phonenumber",
    "telephone",
    "tel",
    "mobile",
    "mobil",
    "cell",
    "cellphone",
    "telefon",
    "telefonnummer",
    "mobilnummer",
    "fax",
    "msisdn",
    "contact_phone",
    "home_phone",
    "work_phone",
    "mobile_phone",
)
BIRTH_COLUMNS = (
    "birth_date",
    "birthdate",
    "date_of_birth",
    "dob",
    "birthday",
    "born",
    "born_at",
    "born_on",
    "fodselsdato",
    "fødselsdato",
    "birth",
    "geburtsdatum",
)
TEXT_COLUMNS = (
    "body",
    "comment",
    "comments",
    "note",
    "notes",
    "message",
    "description",
    "text",
    "bio",
    "about",
    "remark",
    "remarks",
    "feedback",
    "review",
    "kommentar",
    "melding",
    "beskrivelse",
    "notat",
    "fritekst",
    "content",
    "details",
    "reason",
    "summary",
    "answer",
    "question",
)
CREDENTIAL_COLUMNS = (
    "password",
    "passwd",
    "pwd",
    "pass",
    "password_hash",
    "passwordhash",
    "pw_hash",
    "pass_hash",
    "hashed_password",
    "passord",
    "secret",
    "client_secret",
    "token",
    "api_key",
    "apikey",
    "api_token",
    "access_token",
    "refresh_token",
    "reset_token",
    "remember_token",
    "auth_token",
    "session_token",
    "otp_secret",
    "mfa_secret",
    "totp_secret",
    "totp",
    "private_key",
    "salt",
    "password_salt",
    "recovery_codes",
    "activation_key",
    "confirmation_token",
    "verification_token",
)
_STREET_WORDS_TEXT = """
    street st st. road rd rd. avenue ave ave. lane ln boulevard blvd drive dr dr. court ct way place
    pl parkway pkwy terrace square sq highway hwy close crescent row alley circle cir trail vei
    veien vegen veg gate gata gaten allé alle plass plassen torg torget stien bakken strasse straße
    str. weg platz gasse allee rue avenue chemin calle avenida via viale piazza rua gatan vägen väg
    vej vejen gade
"""
STREET_WORDS = frozenset(_STREET_WORDS_TEXT.split())
# Endings of compound street names: Storgata, Kirkeveien, Hauptstraße.
STREET_SUFFIXES = (
    "gata",
    "gaten",
    "veien",
    "vegen",
    "straße",
    "strasse",
    "vej",
    "gatan",
    "vägen",
    "allé",
)
