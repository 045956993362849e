-- Leases: work that runs in one replica at a time (the hold sweeper). A lease names its holder
-- until `expires_at` on the database's clock, so replicas agree whatever their own clocks say.
-- The holder renews it while it runs and gives it up when it stops; a holder that dies keeps
-- it only until it runs out, and then the next replica to ask takes it (store/leases.rs).
create table leases (
    name       text primary key,
    holder     text not null,
    expires_at timestamptz not null
);
