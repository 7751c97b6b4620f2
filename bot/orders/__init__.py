"""Add-on orders: the catalogue per property (data/catalogue), Chinese date/time parsing
(`when`, on JioNLP), validation against the stay and opening hours, the order life cycle
(`state`) and the service the order form calls (`service`).

Date/time library choice (evaluated on Python 3.10 with rasa 3.6.21's pins; see requirements.txt):
JioNLP 1.5.31 parses 明早八点 (after we spell out 明早), 后天下午三点, 下周五, 12月3号晚上7点,
今晚7点半, 大后天上午十点, and finds them inside whole sentences (`ner.extract_time`);
dateparser 1.1.8 (the newest that fits rasa's regex<2022.11 / pytz<2023 pins; 1.2+ needs newer
regex and pytz) returned None for all of them except "明天"; ctparse is English/German only;
time-nlp / ChineseTimeNLP have had no release since 2021.
"""
