-- Rasa's tracker store lives in its own database (docs/DEPLOY.md section 2).
CREATE DATABASE rasa OWNER concierge;
