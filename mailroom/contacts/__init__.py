"""Contacts and contact groups behind one interface, whatever the server speaks."""
