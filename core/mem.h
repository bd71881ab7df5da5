/* The one allocator wrapper of core/: every C allocation goes through here,
 * so counting, caps and fault injection live in one place. Functions return
 * NULL on failure (never abort); the caller frees with mem_free. Lua VMs use
 * their own counting allocator (lvm.c), not these. */
#ifndef MEM_H
#define MEM_H

#include <stddef.h>

void *mem_alloc(size_t n);            /* uninitialised; NULL on failure */
void *mem_calloc(size_t n, size_t m); /* zeroed; NULL on failure or overflow */
void *mem_realloc(void *p, size_t n); /* like realloc; p is kept on failure */
char *mem_strdup(const char *s);      /* NULL in, NULL out */
void mem_free(void *p);
size_t mem_in_use(void);              /* bytes currently allocated through mem_* */
void mem_fail_after(long n);          /* tests: the n-th next allocation fails; -1 disables */

#endif
