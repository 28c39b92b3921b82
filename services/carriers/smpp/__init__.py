"""SMPP 3.4: the codec (pdu, text, receipt), the ESME session and the egress connector."""
