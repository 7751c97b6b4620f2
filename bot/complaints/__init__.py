"""Guest feedback: complaints (classified, ticketed, paged under the SLA) and praise."""
