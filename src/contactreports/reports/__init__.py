"""What can be done with contact reports, whoever asks: the API's handlers and the web page's both
call these use cases, which raise domain errors (errors.py) that each side answers in its own way."""
