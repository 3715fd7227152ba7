"""The tables of the English normaliser: month abbreviations, regnal names, units, currencies and abbreviations
(with what a narrator says for each)."""

from __future__ import annotations

MONTH_ABBR = {"Jan": "January", "Feb": "February", "Mar": "March", "Apr": "April", "Jun": "June", "Jul": "July",
               "Aug": "August", "Sep": "September", "Sept": "September", "Oct": "October", "Nov": "November",
               "Dec": "December"}  # fmt: skip
REGNAL = (
    "Henry|Edward|George|William|Charles|James|Richard|Elizabeth|Mary|Louis|Philip|Frederick|Napoleon|Peter|"
    "Catherine|Alexander|Nicholas|John|Pius|Leo|Gregory|Benedict|Clement|Innocent|Urban|Boniface|Paul|Francis|"
    "Ferdinand|Alfonso|Victor|Emmanuel|Gustav|Gustavus|Christian|Frederic|Otto|Rudolf|Ivan|Ramesses|Ptolemy|"
    "Amenhotep|Thutmose|Constantine|Justinian|Friedrich|Wilhelm|Karl|Ludwig|Sancho|Pedro|Juan|Carlos|Stephen|"
    "Malcolm|David|Robert|Harold|Canute|Olaf|Haakon|Eric|Magnus|Sigismund|Casimir|Sixtus|Julius|Adrian|Hadrian"
)
UNITS = {
    "km": ("kilometre", "kilometres"), "m": ("metre", "metres"), "cm": ("centimetre", "centimetres"),
    "mm": ("millimetre", "millimetres"), "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"), "ft": ("foot", "feet"), "in": ("inch", "inches"), "mi": ("mile", "miles"),
    "yd": ("yard", "yards"), "yds": ("yard", "yards"), "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"), "l": ("litre", "litres"), "ml": ("millilitre", "millilitres"),
    "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometre per hour", "kilometres per hour"),
    "kph": ("kilometre per hour", "kilometres per hour"), "kmh": ("kilometre per hour", "kilometres per hour"),
    "h": ("hour", "hours"), "hr": ("hour", "hours"), "hrs": ("hour", "hours"), "min": ("minute", "minutes"),
    "mins": ("minute", "minutes"), "s": ("second", "seconds"), "sec": ("second", "seconds"),
    "kb": ("kilobyte", "kilobytes"), "mb": ("megabyte", "megabytes"), "gb": ("gigabyte", "gigabytes"),
    "MB": ("megabyte", "megabytes"), "GB": ("gigabyte", "gigabytes"), "KB": ("kilobyte", "kilobytes"),
    "°C": ("degree Celsius", "degrees Celsius"), "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"), "%": ("percent", "percent"), "ha": ("hectare", "hectares"),
}  # fmt: skip
CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}  # fmt: skip
ABBREVIATIONS = {
    "Mr.": "Mister", "Mrs.": "Missus", "Messrs.": "Messieurs", "Dr.": "Doctor", "Prof.": "Professor",
    "Capt.": "Captain", "Gen.": "General", "Col.": "Colonel", "Lt.": "Lieutenant", "Sgt.": "Sergeant",
    "Rev.": "Reverend", "Hon.": "Honourable", "Mt.": "Mount", "Jr.": "Junior", "Sr.": "Senior", "Gov.": "Governor",
    "Fig.": "figure", "fig.": "figure", "vs.": "versus", "cf.": "compare", "approx.": "approximately",
    "e.g.": "for example", "i.e.": "that is", "viz.": "namely", "Ave.": "Avenue", "Rd.": "Road",
}  # fmt: skip
