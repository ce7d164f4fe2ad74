"""The call service: what a gateway's request means for a card.

service.py decides (authorisation, accounting); sessions.py keeps the
holds and the live calls, cdrs.py the legs, CDRs and charges;
talk_time.py and pin_guard.py are its rules on time and PIN guessing.
"""
