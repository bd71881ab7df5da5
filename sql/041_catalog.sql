-- Product catalog (plugins/catalog, disabled unless catalog.enabled): the
-- products API of the seed's course project, in a schema of its own.
-- A name is unique within its category (case-insensitively): a second one
-- is answered 409. version grows by one per write.
CREATE SCHEMA IF NOT EXISTS catalog;

CREATE TABLE IF NOT EXISTS catalog.products (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description TEXT NOT NULL DEFAULT '',
    price NUMERIC(12, 2) NOT NULL CHECK (price >= 0),
    stock INTEGER NOT NULL CHECK (stock >= 0),
    category TEXT NOT NULL CHECK (char_length(category) BETWEEN 1 AND 64),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS products_category_name ON catalog.products (category, lower(name));
CREATE INDEX IF NOT EXISTS products_price ON catalog.products (price);
