-- An order being finalized carries the serial journaled for it: the
-- certificate's transaction makes it valid, a failed serial (FailSerial,
-- RecoverJournal) makes it invalid. Only orders in flight are indexed.
CREATE INDEX acme_orders_processing ON acme_orders(serial) WHERE status = 'processing';
